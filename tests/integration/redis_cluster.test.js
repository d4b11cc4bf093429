// Several streamd nodes on one real redis-server (engine = "redis", REDIS.md): a publication through
// one node's API or one node's client reaches subscribers on the other, history and presence are the
// same from every node, and a client that reconnects to another node recovers what it missed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, API_KEY, sanitizerReport } from './lib/server.js';
import { connectedClient, subscribe, closeAllClients, newClient, once, SDK_TIMEOUT_MS } from './lib/sdk.js';
import { Centrifuge as CentrifugePb } from 'centrifuge/build/protobuf';
import EventSource from 'eventsource';
import { startServer as startNode } from './lib/server.js';
import { api as apiCall, delay } from './lib/http.js';
import { startRedis, stopAllRedis, redisAvailable, startSentinelSetup, sentinelMasterPort, redisText } from './lib/redis.js';
import { startProxy } from './lib/tcp_proxy.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';
import { openWsRaw, closeAllWsRaw } from './lib/wsraw.js';

const chat = {
  name: 'chat', presence: true, join_leave: true, history_size: 10, history_ttl: '300s',
  allow_subscribe_for_client: true, allow_publish_for_subscriber: true, allow_presence_for_subscriber: true,
  allow_history_for_subscriber: true, allow_recovery: true,
};

// A map namespace (map subscriptions): its keys and its stream of changes live in Redis.
const board = { name: 'board', subscription_type: 'map', map_mode: 'recoverable', map_key_ttl: '300s',
  map_min_page_size: 1, map_allow_publish_for_subscriber: true, map_allow_remove_for_subscriber: true };

let redis, a, b, c3, cfg;
before(async () => {
  if (!redisAvailable) return;
  redis = await startRedis();
  cfg = {
    http_stream: true, client_insecure: true, api_key: API_KEY, engine: 'redis', redis_address: redis.address,
    redis_prefix: `t${process.pid}`, namespaces: [chat, board], health: true, sse: true,
    global_presence_ttl: '2s', // short, so that the refresh and the expiry of a dead node's entries show
  };
  [a, b, c3] = await Promise.all([startServer(cfg), startServer(cfg), startServer(cfg)]);
});
after(async () => {
  closeAllClients();
  closeAllRaw();
  closeAllWsRaw();
  await stopAll();
  await stopAllRedis();
});

/** A server API call on SRV; resolves with the JSON answer. */
const api = async (srv, method, params) => (await apiCall(srv.base, method, params, { key: API_KEY })).json;

const skip = !redisAvailable && 'redis-server is not installed';

/** Publishes until SUB gets one (the node's PUB/SUB subscription may still be on its way). */
async function firstDelivery(sub, publish) {
  for (let i = 0; i < 50; i++) {
    await publish(i);
    try {
      return await sub.nextPub(200);
    } catch { /* not yet */ }
  }
  throw new Error('nothing delivered');
}

describe('map subscriptions across nodes', { skip }, () => {
  test('state written through B and C is the snapshot on A; changes from any node reach it live', async () => {
    const channel = 'board:shared';
    for (let i = 0; i < 5; i++) {
      const r = await api(i % 2 ? b : c3, 'map_publish', { channel, key: `k${i}`, data: { n: i } });
      assert.equal(r.result.offset, i + 1, JSON.stringify(r));
    }
    assert.equal((await api(a, 'map_stats', { channel })).result.num_keys, 5);
    // stream on A, emulation POSTs to B: each snapshot page is a routed subscribe command
    const c = newClient(a.base, { emulationBase: b.base });
    const connected = once(c, 'connected');
    c.connect();
    await connected;
    const sub = c.newMapSubscription(channel, { pageSize: 2 });
    const updates = [];
    sub.on('update', (ctx) => updates.push(ctx));
    const synced = once(sub, 'sync');
    sub.subscribe();
    const { entries } = await synced;
    assert.deepEqual(Object.fromEntries(entries.map((e) => [e.key, e.data])),
      { k0: { n: 0 }, k1: { n: 1 }, k2: { n: 2 }, k3: { n: 3 }, k4: { n: 4 } });
    await sub.publish('k9', { n: 9 }); // the client's own change, routed through B
    await api(c3, 'map_remove', { channel, key: 'k0' });
    await api(b, 'map_publish', { channel, key: 'k1', data: { n: 11 } });
    while (updates.length < 3) await once(sub, 'update');
    assert.deepEqual(updates.map((u) => [u.key, u.removed === true, u.data, u.offset]),
      [['k9', false, { n: 9 }, 6], ['k0', true, undefined, 7], ['k1', false, { n: 11 }, 8]]);
    assert.equal((await api(b, 'map_stats', { channel })).result.num_keys, 5);
    c.disconnect();
  });
});

describe('two nodes on one Redis', { skip }, () => {
  test('a publication through B\'s API reaches a subscriber on A, and history is the same on both', async () => {
    const c = await connectedClient(a.base);
    const sub = await subscribe(c, 'chat:api');
    const res = await api(b, 'publish', { channel: 'chat:api', data: { n: 1 } });
    assert.deepEqual(res, { result: { offset: 1, epoch: res.result.epoch } });
    const pub = await sub.nextPub();
    assert.deepEqual(pub.data, { n: 1 });
    assert.equal(pub.offset, 1);
    const ha = await api(a, 'history', { channel: 'chat:api', limit: -1 });
    const hb = await api(b, 'history', { channel: 'chat:api', limit: -1 });
    assert.deepEqual(ha, hb);
    assert.deepEqual(ha.result.publications.map((p) => p.data), [{ n: 1 }]);
    assert.equal(ha.result.epoch, res.result.epoch);
  });

  test('a client on B publishes, a client on A receives, in order', async () => {
    const ca = await connectedClient(a.base);
    const cb = await connectedClient(b.base);
    const sa = await subscribe(ca, 'chat:order');
    const sb = await subscribe(cb, 'chat:order');
    for (let i = 0; i < 20; i++) await sb.publish({ i });
    const got = [];
    for (let i = 0; i < 20; i++) got.push((await sa.nextPub()).data.i);
    assert.deepEqual(got, [...Array(20).keys()]);
  });

  test('presence lists the clients of both nodes, from either node', async () => {
    const ca = await connectedClient(a.base);
    const cb = await connectedClient(b.base);
    const sa = await subscribe(ca, 'chat:presence');
    await subscribe(cb, 'chat:presence');
    const fromA = await sa.presence();
    const viaB = await api(b, 'presence', { channel: 'chat:presence' });
    const ids = [ca.connectedCtx.client, cb.connectedCtx.client].sort();
    assert.deepEqual(Object.keys(fromA.clients).sort(), ids);
    assert.deepEqual(Object.keys(viaB.result.presence).sort(), ids);
    const stats = await api(a, 'presence_stats', { channel: 'chat:presence' });
    assert.deepEqual(stats.result, { num_clients: 2, num_users: 1 });
  });

  test('join and leave of a client on B reach a subscriber on A', async () => {
    const ca = await connectedClient(a.base);
    const sa = await subscribe(ca, 'chat:joins', { joinLeave: true });
    const joins = [];
    const leaves = [];
    sa.on('join', (ctx) => joins.push(ctx.info.client));
    sa.on('leave', (ctx) => leaves.push(ctx.info.client));
    const cb = await connectedClient(b.base);
    const sb = await subscribe(cb, 'chat:joins');
    const id = cb.connectedCtx.client;
    for (let i = 0; i < 100 && !joins.includes(id); i++) await delay(20);
    assert.ok(joins.includes(id), 'join from B seen on A');
    sb.unsubscribe();
    for (let i = 0; i < 100 && !leaves.includes(id); i++) await delay(20);
    assert.ok(leaves.includes(id), 'leave from B seen on A');
  });

  test('a client that reconnects to the other node recovers what it missed', async () => {
    const c1 = await connectedClient(a.base);
    const s1 = await subscribe(c1, 'chat:recover', { recoverable: true });
    await firstDelivery(s1, (i) => api(b, 'publish', { channel: 'chat:recover', data: { warmup: i } }));
    const last = s1.pubs[s1.pubs.length - 1];
    const epoch = s1.subscribedCtx.streamPosition ? s1.subscribedCtx.streamPosition.epoch : undefined;
    c1.disconnect();
    for (let i = 0; i < 3; i++) await api(a, 'publish', { channel: 'chat:recover', data: { missed: i } });
    const hist = await api(a, 'history', { channel: 'chat:recover', limit: 0 });
    const c2 = await connectedClient(b.base);
    const s2 = await subscribe(c2, 'chat:recover', {
      recoverable: true,
      since: { offset: last.offset, epoch: epoch || hist.result.epoch },
    });
    assert.equal(s2.subscribedCtx.wasRecovering, true, JSON.stringify(s2.subscribedCtx));
    assert.equal(s2.subscribedCtx.recovered, true);
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await s2.nextPub()).data);
    assert.deepEqual(got, [{ missed: 0 }, { missed: 1 }, { missed: 2 }]);
  });
});

/** Polls FN until it returns a truthy value (at most MS). */
async function eventually(fn, ms = 12000, what = 'condition') {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`not within ${ms} ms: ${what}`);
    await delay(100);
  }
}

const nodeIds = async (srv) => (await api(srv, 'info', {})).result.nodes.map((n) => n.uid).sort();

describe('the control plane', { skip }, () => {
  test('info on every node lists all three nodes with their counts', async () => {
    // Membership spreads by heartbeats: that A knows B does not mean B's answer reached B yet, so each
    // node is asked until it lists three (a node says hello once it listens, so this is quick).
    const seen = [];
    for (const node of [a, b, c3]) {
      seen.push(await eventually(async () => {
        const i = await nodeIds(node);
        return i.length === 3 && i;
      }, 12000, `three nodes in info of ${node.base}`));
    }
    assert.deepEqual(seen[1], seen[0]);
    assert.deepEqual(seen[2], seen[0]);
    const info = (await api(a, 'info', {})).result.nodes;
    for (const n of info) assert.equal(typeof n.num_clients, 'number');
  });

  test('the API disconnect of a user on A, sent to B, ends that user\'s connection', async () => {
    const c = await connectedClient(a.base);
    const gone = once(c, 'connecting');
    const res = await api(b, 'disconnect', { client: c.connectedCtx.client, disconnect: { code: 4001, reason: 'bye' } });
    assert.deepEqual(res, { result: {} });
    assert.equal((await gone).code, 4001);
  });

  test('channels merges every node\'s subscribers', async () => {
    const ca = await connectedClient(a.base);
    const cb = await connectedClient(b.base);
    await subscribe(ca, 'chat:merged');
    await subscribe(cb, 'chat:merged');
    const res = await api(c3, 'channels', { pattern: 'chat:merged' });
    assert.deepEqual(res.result.channels, { 'chat:merged': { num_clients: 2 } });
  });
});

/** A client whose stream is on STREAM and whose emulation POSTs go to EMU. */
function splitClient(stream, emu, opts = {}) {
  return newClient(stream.base, { emulationBase: emu.base, ...opts });
}

async function connectSplit(stream, emu, opts = {}) {
  const c = splitClient(stream, emu, opts);
  const connected = once(c, 'connected', SDK_TIMEOUT_MS + 5000);
  c.connect();
  c.connectedCtx = await connected;
  return c;
}

describe('emulation routed to the node that holds the stream', { skip }, () => {
  for (const [label, opts] of [
    ['JSON over http_stream', {}],
    ['protobuf over http_stream', { sdk: CentrifugePb }],
    ['JSON over SSE', { transport: 'sse', streamPath: '/connection/sse', eventsource: EventSource }],
  ]) {
    // The protobuf build publishes bytes and hands bytes back: JSON text either way here.
    const pb = opts.sdk === CentrifugePb;
    const enc = (v) => (pb ? new TextEncoder().encode(JSON.stringify(v)) : v);
    const dec = (v) => (pb ? JSON.parse(new TextDecoder().decode(v)) : v);
    test(`${label}: stream on A, POSTs to B and C: subscribe, publish, presence, history`, async () => {
      await eventually(async () => (await nodeIds(b)).length === 3, 12000, 'nodes known');
      const viaB = await connectSplit(a, b, opts);
      const viaC = await connectSplit(a, c3, opts);
      const ch = `chat:routed${label.replace(/\W/g, '')}`;
      const sb = await subscribe(viaB, ch);
      const sc = await subscribe(viaC, ch);
      await sb.publish(enc({ from: 'b' }));
      assert.deepEqual(dec((await sc.nextPub()).data), { from: 'b' });
      assert.deepEqual(dec((await sb.nextPub()).data), { from: 'b' });
      const p = await sc.presence();
      assert.deepEqual(Object.keys(p.clients).sort(), [viaB.connectedCtx.client, viaC.connectedCtx.client].sort());
      const h = await sb.history({ limit: 10 });
      assert.deepEqual(h.publications.map((x) => dec(x.data)), [{ from: 'b' }]);
      assert.ok(viaB.emulationStatuses.length > 0 && viaB.emulationStatuses.every((st) => st === 204),
        `emulation statuses ${viaB.emulationStatuses}`);
    });
  }

  test('a POST naming a node nobody knows gets 404', async () => {
    const res = await fetch(`${b.base}/emulation`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ node: '00000000-0000-4000-8000-000000000000', session: 'x', data: '{}' }),
    });
    assert.equal(res.status, 404);
  });

  test('SIGKILL of a node: the others drop it within ~10 s, their clients stay, its sessions get 404', async () => {
    const d = await startNode(cfg);
    await eventually(async () => (await nodeIds(a)).includes(await (async () => {
      const i = await api(d, 'info', {});
      return i.result.nodes[0].uid;
    })()), 12000, 'd known to a');
    const dId = (await api(d, 'info', {})).result.nodes[0].uid;
    const onA = await connectedClient(a.base);
    const sa = await subscribe(onA, 'chat:survivor');
    const onD = await connectedClient(d.base);
    await subscribe(onD, 'chat:survivor');
    const present = async () => Object.keys((await api(a, 'presence', { channel: 'chat:survivor' })).result.presence);
    assert.equal((await present()).length, 2);
    await d.stop('SIGKILL');
    const t0 = Date.now();
    await eventually(async () => !(await nodeIds(a)).includes(dId), 12000, 'd dropped from a');
    assert.ok(Date.now() - t0 <= 11000);
    const res = await fetch(`${a.base}/emulation`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ node: dId, session: 'x', data: '{}' }),
    });
    assert.equal(res.status, 404);
    await api(b, 'publish', { channel: 'chat:survivor', data: { still: 'here' } });
    assert.deepEqual((await sa.nextPub()).data, { still: 'here' });
    // the dead node's presence entry expired (global_presence_ttl 2s); A's own, refreshed, is still there
    assert.deepEqual(await present(), [onA.connectedCtx.client]);
  });
});

/** Reads frames from raw stream S (pings skipped) until DONE(frames) is true; returns the frames. */
async function readUntil(s, done, ms = 15000) {
  const frames = [];
  const until = Date.now() + ms;
  while (!done(frames)) frames.push(await s.nextJSON(Math.max(1, until - Date.now()), { skipPings: true }));
  return frames;
}

describe('client publishes do not wait for Redis', { skip }, () => {
  test('200 publishes in one emulation POST routed to the stream\'s node: every reply by id, publications in order', async () => {
    await eventually(async () => (await nodeIds(b)).length === 3, 12000, 'nodes known');
    const s = await connectRaw(a.base);
    const viaB = `${b.base}/emulation`;
    const ch = 'chat:burst';
    assert.equal((await s.emulate([{ id: 2, subscribe: { channel: ch } }], { url: viaB })).status, 204);
    const sub = await s.reply(2);
    assert.ok(sub.subscribe, JSON.stringify(sub));
    const n = 200;
    const ids = Array.from({ length: n }, (_, i) => 100 + i);
    const res = await s.emulate(ids.map((id, i) => ({ id, publish: { channel: ch, data: { i } } })), { url: viaB });
    assert.equal(res.status, 204);
    const frames = await readUntil(s, (fs) => fs.filter((f) => f.id).length === n && fs.filter((f) => f.push).length === n);
    const replies = frames.filter((f) => f.id);
    assert.deepEqual(replies.map((r) => r.id).sort((x, y) => x - y), ids);
    for (const r of replies) assert.deepEqual(r, { id: r.id, publish: {} });
    const pubs = frames.filter((f) => f.push).map((f) => f.push.pub);
    assert.deepEqual(pubs.map((p) => p.data.i), [...Array(n).keys()]);
    const offsets = pubs.map((p) => p.offset);
    assert.deepEqual(offsets, offsets.map((_, i) => offsets[0] + i), 'offsets follow the commands\' order');
  });

  test('on a Redis that just started (no script loaded yet), a burst of publishes keeps its order', async () => {
    const r = await startRedis();
    const e = await startNode({ ...cfg, redis_address: r.address, redis_prefix: `n${process.pid}` });
    try {
      await eventually(async () => (await fetch(`${e.base}/health`)).status === 200, 10000, 'e healthy');
      const s = await connectRaw(e.base);
      await s.emulate([{ id: 2, subscribe: { channel: 'chat:fresh' } }]);
      assert.ok((await s.reply(2)).subscribe);
      const n = 300;
      const cmds = Array.from({ length: n }, (_, i) => ({ id: 10 + i, publish: { channel: 'chat:fresh', data: { i } } }));
      // three POSTs one after the other, so that commands of later POSTs reach the engine while the answers
      // to the first ones come back
      for (let k = 0; k < 3; k++) await s.emulate(cmds.slice((k * n) / 3, ((k + 1) * n) / 3));
      const frames = await readUntil(s, (fs) => fs.filter((f) => f.push).length === n);
      assert.deepEqual(frames.filter((f) => f.push).map((f) => f.push.pub.data.i), [...Array(n).keys()]);
    } finally {
      const st = await e.stop();
      await r.stop();
      assert.equal(st.code, 0, st.stderr);
    }
  });

  test('a publish in flight when Redis stops answering gets the temporary error; later commands do not wait for it', async () => {
    const r = await startRedis();
    const e = await startNode({ ...cfg, redis_address: r.address, redis_io_timeout: '1s', redis_prefix: `f${process.pid}` });
    try {
      await eventually(async () => (await fetch(`${e.base}/health`)).status === 200, 10000, 'e healthy');
      const s = await connectRaw(e.base);
      await s.emulate([{ id: 2, subscribe: { channel: 'chat:frozen' } }]);
      assert.ok((await s.reply(2)).subscribe);
      await s.emulate([{ id: 3, publish: { channel: 'chat:frozen', data: { before: true } } }]);
      const ok = await s.reply(3);
      assert.deepEqual(ok.publish, {});
      r.child.kill('SIGSTOP'); // Redis stops answering: the publish below stays in flight until the I/O timeout
      const res = await s.emulate([
        { id: 4, publish: { channel: 'chat:frozen', data: { during: true } } },
        { id: 5, rpc: { method: 'm', data: {} } }, // answered by the node alone
      ]);
      assert.equal(res.status, 204);
      const frames = await readUntil(s, (fs) => fs.some((f) => f.id === 4));
      const order = frames.filter((f) => f.id).map((f) => f.id);
      assert.deepEqual(order, [5, 4], 'the rpc reply does not wait for the publish stuck on Redis');
      const failed = frames.find((f) => f.id === 4);
      assert.equal(failed.error.code, 100, JSON.stringify(failed));
      assert.equal(failed.error.temporary, true, JSON.stringify(failed));
      assert.ok(!frames.some((f) => f.push && f.push.pub && f.push.pub.data.during), 'nothing was published');
    } finally {
      r.child.kill('SIGCONT');
      const st = await e.stop();
      await r.stop();
      assert.equal(st.code, 0, st.stderr);
    }
  });

  test('a session that ends while its publish is in flight: the late answer goes nowhere, the node stays well', async () => {
    const r = await startRedis();
    const e = await startNode({ ...cfg, redis_address: r.address, redis_io_timeout: '2s', redis_prefix: `g${process.pid}` });
    try {
      await eventually(async () => (await fetch(`${e.base}/health`)).status === 200, 10000, 'e healthy');
      const s = await connectRaw(e.base);
      r.child.kill('SIGSTOP');
      assert.equal((await s.emulate([{ id: 2, publish: { channel: 'chat:gone', data: { x: 1 } } }])).status, 204);
      s.close(); // the session ends; its publish is still waiting for Redis
      await delay(300);
      r.child.kill('SIGCONT'); // the answer comes for a session that is no more
      await eventually(async () => (await api(e, 'publish', { channel: 'chat:gone', data: { y: 2 } })).result, 10000,
        'publishing works');
      const c = await connectedClient(e.base);
      const sub = await subscribe(c, 'chat:gone');
      const pub = await firstDelivery(sub, (i) => api(e, 'publish', { channel: 'chat:gone', data: { z: i } }));
      assert.ok('z' in pub.data);
    } finally {
      r.child.kill('SIGCONT');
      const st = await e.stop();
      await r.stop();
      assert.equal(st.code, 0, st.stderr);
      assert.ok(!sanitizerReport(st.stderr), st.stderr);
    }
  });
});

describe('faults', { skip }, () => {
  test('a PUB/SUB connection that goes silent is probed and made again; delivery resumes', async () => {
    const proxy = await startProxy(redis.port);
    try {
      const e = await startNode({ ...cfg, redis_address: proxy.address, redis_io_timeout: '1s' });
      const c = await connectedClient(e.base);
      const sub = await subscribe(c, 'chat:silent');
      await firstDelivery(sub, (i) => api(b, 'publish', { channel: 'chat:silent', data: { before: i } }));
      const subscribers = proxy.subscriberConnections;
      proxy.silenced = true;
      await eventually(() => proxy.subscriberConnections > subscribers, 15000, 'a new PUB/SUB connection');
      proxy.silenced = false;
      const pub = await firstDelivery(sub, (i) => api(b, 'publish', { channel: 'chat:silent', data: { after: i } }));
      assert.ok('after' in pub.data);
      assert.equal(c.state, 'connected');
      await e.stop();
    } finally {
      await proxy.close();
    }
  });

  test('publications a silent PUB/SUB missed: the positioned subscriber is told 3010 and recovers them', async () => {
    const proxy = await startProxy(redis.port);
    try {
      const e = await startNode({ ...cfg, redis_address: proxy.address, redis_io_timeout: '1s' });
      const c = await connectedClient(e.base);
      const codes = [];
      c.on('disconnected', (ctx) => codes.push(ctx.code));
      c.on('connecting', (ctx) => codes.push(ctx.code));
      const sub = await subscribe(c, 'chat:missed', { recoverable: true });
      await firstDelivery(sub, (i) => api(b, 'publish', { channel: 'chat:missed', data: { warm: i } }));
      const subscribers = proxy.subscriberConnections;
      proxy.silenced = true;
      for (let i = 1; i <= 3; i++) await api(b, 'publish', { channel: 'chat:missed', data: { missed: i } });
      await eventually(() => proxy.subscriberConnections > subscribers, 15000, 'a new PUB/SUB connection');
      proxy.silenced = false;
      const got = [];
      for (let i = 0; i < 3; i++) got.push((await sub.nextPub(20000)).data);
      assert.deepEqual(got, [{ missed: 1 }, { missed: 2 }, { missed: 3 }]);
      assert.ok(codes.includes(3010), `told insufficient state (codes ${codes})`);
      await e.stop();
    } finally {
      await proxy.close();
    }
  });

  test('Redis stopped: clients stay, publish answers an error, /health 503; Redis back: delivery resumes', async () => {
    const c = await connectedClient(a.base);
    const sub = await subscribe(c, 'chat:fault');
    await redis.stop();
    await eventually(async () => (await fetch(`${a.base}/health`)).status === 503, 10000, '/health 503');
    const during = await api(b, 'publish', { channel: 'chat:fault', data: { lost: true } });
    assert.ok(during.error, `publish answered ${JSON.stringify(during)}`);
    assert.equal(c.state, 'connected');
    redis = await startRedis({ port: redis.port });
    await eventually(async () => (await fetch(`${a.base}/health`)).status === 200, 10000, '/health 200');
    const pub = await firstDelivery(sub, (i) => api(b, 'publish', { channel: 'chat:fault', data: { back: i } }));
    assert.ok('back' in pub.data);
    assert.equal(c.state, 'connected');
  });
});

describe('Redis restarted under load', { skip }, () => {
  test('publishing never stops: errors during the gap, no crash, subscribers get publications again', async () => {
    const c = await connectedClient(a.base);
    const sub = await subscribe(c, 'chat:load', { recoverable: true });
    await firstDelivery(sub, (i) => api(b, 'publish', { channel: 'chat:load', data: { warm: i } }));
    let ok = 0, failed = 0, running = true;
    const loop = (async () => {
      for (let i = 0; running; i++) {
        const r = await api(i % 2 ? a : b, 'publish', { channel: 'chat:load', data: { n: i } }).catch(() => null);
        if (r && r.result) ok++;
        else failed++;
        await delay(5);
      }
    })();
    await delay(300);
    const before = ok;
    await redis.stop();
    await delay(500);
    redis = await startRedis({ port: redis.port });
    await eventually(async () => (await fetch(`${a.base}/health`)).status === 200, 10000, 'A healthy again');
    await eventually(async () => (await fetch(`${b.base}/health`)).status === 200, 10000, 'B healthy again');
    await eventually(() => ok > before + 20, 10000, 'publishing works again');
    running = false;
    await loop;
    assert.ok(before > 0 && failed > 0, `published ${before} before, ${failed} refused during the gap`);
    assert.equal(a.exited, null);
    assert.equal(b.exited, null);
    const pub = await firstDelivery(sub, (i) => api(b, 'publish', { channel: 'chat:load', data: { marker: i } }));
    assert.ok('marker' in pub.data || 'n' in pub.data);
  });
});

describe('Sentinel', { skip }, () => {
  test('the node finds the master through redis-sentinel and follows a failover', async () => {
    const set = await startSentinelSetup();
    const n = await startNode({
      ...cfg, redis_address: '127.0.0.1:1', redis_sentinel_address: [set.sentinelAddress],
      redis_sentinel_master_name: set.masterName, redis_prefix: `s${process.pid}`,
    });
    const c = await connectedClient(n.base);
    const sub = await subscribe(c, 'chat:failover');
    await firstDelivery(sub, (i) => api(n, 'publish', { channel: 'chat:failover', data: { before: i } }));
    await set.master.stop();
    await eventually(async () => (await sentinelMasterPort(set.sentinel.port, set.masterName)) === set.replica.port,
      20000, 'the Sentinel promoted the replica');
    const pub = await firstDelivery(sub, (i) => api(n, 'publish', { channel: 'chat:failover', data: { after: i } }));
    assert.ok('after' in pub.data);
    assert.equal(c.state, 'connected');
    await n.stop();
  });
});

describe('shards', { skip }, () => {
  test('two redis-servers as shards: channels spread over both, delivery and history cross nodes', async () => {
    const [r1, r2] = await Promise.all([startRedis(), startRedis()]);
    const shardCfg = { ...cfg, redis_address: [r1.address, r2.address], redis_prefix: `sh${process.pid}` };
    const [n1, n2] = await Promise.all([startNode(shardCfg), startNode(shardCfg)]);
    const c = await connectedClient(n1.base);
    const channels = Array.from({ length: 12 }, (_, i) => `chat:shard${i}`);
    const subs = await Promise.all(channels.map((ch) => subscribe(c, ch)));
    for (let i = 0; i < channels.length; i++) {
      const pub = await firstDelivery(subs[i], (k) => api(n2, 'publish', { channel: channels[i], data: { i, k } }));
      assert.equal(pub.data.i, i);
      const h = await api(n1, 'history', { channel: channels[i], limit: -1 });
      assert.ok(h.result.publications.length >= 1);
    }
    const keys = async (r) => (await redisText(r.port, `KEYS sh${process.pid}.stream.meta.*`)).match(/shard\d+/g) || [];
    const [k1, k2] = [await keys(r1), await keys(r2)];
    assert.ok(k1.length > 0 && k2.length > 0, `both shards hold streams (${k1.length} and ${k2.length})`);
    assert.equal(k1.length + k2.length, channels.length);
    assert.deepEqual([...k1, ...k2].sort(), channels.map((ch) => ch.split(':')[1]).sort());
    assert.equal((await nodeIds(n1)).length >= 2, true);
    await Promise.all([n1.stop(), n2.stop()]);
  });
});

describe('login', { skip }, () => {
  test('redis_password and redis_db apply to an address without a login of its own', async () => {
    const locked = await startRedis({ args: ['--requirepass', 'hunter2'] });
    const n = await startNode({ ...cfg, redis_address: locked.address, redis_password: 'hunter2', redis_db: 3,
      redis_prefix: `l${process.pid}` });
    await eventually(async () => (await fetch(`${n.base}/health`)).status === 200, 10000, 'logged in');
    const res = await api(n, 'publish', { channel: 'chat:login', data: { ok: true } });
    assert.equal(res.result.offset, 1);
    const keys = await redisText(locked.port, 'AUTH hunter2\r\nSELECT 3\r\nKEYS *login*');
    assert.match(keys, /chat:login/); /* the stream went to database 3 */
    await n.stop();
  });
});

// A survey (channels, for one) waits for every known node's answer, up to 3 s for a node
// that hangs. The node that runs it must go on serving its streams meanwhile: a core loop that waited
// for the survey would hold back every stream it owns.
describe('a server API call that waits for other nodes', { skip }, () => {
  test('a survey waiting for a hung node does not hold back the streams of the node that runs it', { timeout: 60000 }, async () => {
    const own = { ...cfg, redis_prefix: `${cfg.redis_prefix}hung` }; // a cluster of its own: x, y, z
    const [x, y, z] = await Promise.all([startNode(own), startNode(own), startNode(own)]);
    await eventually(async () => (await nodeIds(x)).length === 3, 12000, 'x knows y and z');
    const streams = [];
    for (let i = 0; i < 8; i++) { // on both core loops of x, whichever the survey's request lands on
      const s = await connectRaw(x.base);
      await call(s, { subscribe: { channel: 'chat:hung' }, id: 2 });
      streams.push(s);
    }
    // The subscriptions reach Redis's PUB/SUB through x's connection: wait until a publication arrives.
    await eventually(async () => {
      await api(z, 'publish', { channel: 'chat:hung', data: { warmup: true } });
      try { await streams[0].nextJSON(300, { skipPings: true }); return true; } catch { return false; }
    }, 12000, 'x subscribed in Redis');
    for (const s of streams.slice(1)) await s.nextJSON(5000, { skipPings: true });
    y.child.kill('SIGSTOP');
    try {
      const t0 = Date.now();
      const survey = api(x, 'channels', { pattern: 'chat:*' }); // waits for y until the survey's 3 s deadline
      await delay(300);
      await api(z, 'publish', { channel: 'chat:hung', data: { during: 'survey' } });
      for (const [i, s] of streams.entries()) {
        let msg;
        do msg = await s.nextJSON(1500, { skipPings: true }); while (msg.push && msg.push.pub && msg.push.pub.data.warmup);
        assert.deepEqual(msg.push.pub.data, { during: 'survey' }, `stream ${i}`);
      }
      const tDelivered = Date.now() - t0;
      const info = await survey;
      const tSurvey = Date.now() - t0;
      assert.equal(info.result.channels['chat:hung'].num_clients, 8, JSON.stringify(info));
      assert.ok(tSurvey >= 2000, `the survey waited for the hung node (${tSurvey} ms)`);
      assert.ok(tDelivered < tSurvey, `every stream had the publication (${tDelivered} ms) before the survey ended (${tSurvey} ms)`);
    } finally {
      y.child.kill('SIGCONT');
      await y.stop('SIGKILL');
    }
  });
});

/** A raw WebSocket client of node N, connected: sendJSON(cmd), replyTo(id) (skipping pushes). */
async function wsClient(n) {
  const ws = await openWsRaw(n.port);
  const seen = [];
  const c = {
    sendJSON: (cmd) => ws.send(0x1, Buffer.from(JSON.stringify(cmd))),
    async replyTo(id, ms = 10000) {
      const end = Date.now() + ms;
      for (;;) {
        const i = seen.findIndex((f) => f.id === id);
        if (i >= 0) return seen.splice(i, 1)[0];
        const text = (await ws.nextJSONText(Math.max(1, end - Date.now())));
        for (const line of text.split('\n')) if (line) seen.push(JSON.parse(line));
      }
    },
  };
  c.sendJSON({ id: 1, connect: { name: 'raw' } });
  assert.ok((await c.replyTo(1)).connect);
  return c;
}

describe('client commands that wait for Redis', { skip }, () => {
  // Subscribe, presence and history wait for Redis; they run on workers, so a node's other clients
  // (whose streams and commands the same core loops and WebSocket thread serve) are never held back,
  // and each client's own commands still run in the order it sent them.
  test('with Redis stopped, clients waiting on history do not hold back the others\' commands', { timeout: 60000 }, async () => {
    const r = await startRedis();
    const n = await startNode({ ...cfg, redis_address: r.address, redis_prefix: `w${process.pid}` });
    try {
      await eventually(async () => (await fetch(`${n.base}/health`)).status === 200, 10000, 'healthy');
      const waiting = [], others = [];
      for (let i = 0; i < 8; i++) { // on both core loops, whichever each stream lands on
        const w = await connectRaw(n.base);
        assert.ok((await call(w, { id: 2, subscribe: { channel: 'chat:wait' } })).subscribe);
        waiting.push(w);
        others.push(await connectRaw(n.base));
      }
      r.child.kill('SIGSTOP');
      let asked;
      try {
        // history, then a presence call behind it in the same POST: they must stay in that order
        asked = waiting.map((w) => w.emulate([{ id: 3, history: { channel: 'chat:wait', limit: 1 } },
          { id: 4, presence_stats: { channel: 'chat:wait' } }]));
        await delay(200);
        const answered = Promise.all(others.map((o) => call(o, { id: 2, rpc: { method: 'ping' } })));
        const first = await Promise.race([answered, delay(3000).then(() => 'held back')]);
        assert.notEqual(first, 'held back', 'the other clients were answered while Redis was stopped');
        for (const reply of first) assert.equal(reply.id, 2);
      } finally {
        r.child.kill('SIGCONT');
      }
      for (const [i, res] of (await Promise.all(asked)).entries()) {
        assert.equal(res.status, 204, `waiting client ${i}`);
        const frames = await readUntil(waiting[i], (fs) => fs.filter((f) => f.id === 3 || f.id === 4).length === 2);
        const ids = frames.filter((f) => f.id === 3 || f.id === 4).map((f) => f.id);
        assert.deepEqual(ids, [3, 4], `waiting client ${i}: replies in command order`);
      }
    } finally {
      await n.stop();
      await r.stop();
    }
  });

  test('an emulation POST carrying a publish answers 204 only once the publish reply is on the stream', { timeout: 60000 }, async () => {
    const r = await startRedis();
    const n = await startNode({ ...cfg, redis_address: r.address, redis_prefix: `p${process.pid}` });
    try {
      await eventually(async () => (await fetch(`${n.base}/health`)).status === 200, 10000, 'healthy');
      const s = await connectRaw(n.base);
      assert.ok((await call(s, { id: 2, subscribe: { channel: 'chat:p204' } })).subscribe);
      r.child.kill('SIGSTOP');
      let post;
      try {
        post = s.emulate([{ id: 3, publish: { channel: 'chat:p204', data: { x: 1 } } }]);
        const early = await Promise.race([post.then(() => '204 early'), delay(1000).then(() => 'waiting')]);
        assert.equal(early, 'waiting', 'the POST waits for the publish reply while Redis is stopped');
      } finally {
        r.child.kill('SIGCONT');
      }
      assert.equal((await post).status, 204);
      const reply = await s.reply(3);
      assert.deepEqual(reply.publish, {}, JSON.stringify(reply));
    } finally {
      await n.stop();
      await r.stop();
    }
  });

  test('over WebSocket, a history call waiting for Redis does not hold back another client', { timeout: 60000 }, async () => {
    const r = await startRedis();
    const n = await startNode({ ...cfg, redis_address: r.address, redis_prefix: `v${process.pid}` });
    try {
      await eventually(async () => (await fetch(`${n.base}/health`)).status === 200, 10000, 'healthy');
      const [w, o] = [await wsClient(n), await wsClient(n)];
      w.sendJSON({ id: 2, subscribe: { channel: 'chat:wsw' } });
      assert.ok((await w.replyTo(2)).subscribe);
      r.child.kill('SIGSTOP');
      try {
        w.sendJSON({ id: 3, history: { channel: 'chat:wsw', limit: 1 } });
        await delay(200);
        o.sendJSON({ id: 2, rpc: { method: 'ping' } });
        const first = await Promise.race([o.replyTo(2), delay(3000).then(() => 'held back')]);
        assert.notEqual(first, 'held back', 'the other client was answered while Redis was stopped');
      } finally {
        r.child.kill('SIGCONT');
      }
      assert.equal((await w.replyTo(3)).id, 3);
    } finally {
      await n.stop();
      await r.stop();
    }
  });
});
