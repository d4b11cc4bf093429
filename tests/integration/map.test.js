// Map subscriptions (Centrifugo 6.8's experimental keyed state; namespace options subscription_type =
// "map", map_mode, map_key_ttl, map_*_page_size, map_allow_*, map_client_key; the server API's
// map_publish, map_remove, map_stats, map_clear): the official SDK's newMapSubscription pages the
// snapshot (STATE), catches up on the change stream (STREAM) and goes LIVE, emitting 'subscribed', one
// 'sync' with every entry, then an 'update' per change. Each test checks what the application sees
// against what was written, over http_stream, SSE and WebSocket, in JSON and protobuf; recovery after a
// reconnect gives updates and no second sync; ephemeral maps resync every time; map_clear changes the
// epoch; expired keys are removed. A raw JSON client drives the pages by hand to check the races of
// writes between pages and that no push arrives before the LIVE reply.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Centrifuge } from 'centrifuge';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { api, withTimeout } from './lib/http.js';
import { connectRaw, call, closeAllRaw } from './lib/raw.js';
import { once, SDK_TIMEOUT_MS, SDK_TRANSPORTS } from './lib/sdk.js';
import { hsToken, now } from './lib/jwt.js';

let srv;
const clients = [];

// Recoverable maps, pages as small as the client asks (map_min_page_size 1).
const MAP = { subscription_type: 'map', map_mode: 'recoverable', map_key_ttl: '300s', map_min_page_size: 1 };

before(async () => {
  srv = await startServer({
    http_stream: true, sse: true, client_insecure: true,
    api_key: API_KEY,
    namespaces: [
      { name: 'board', ...MAP, map_allow_publish_for_subscriber: true, map_allow_remove_for_subscriber: true },
      { name: 'eph', subscription_type: 'map', map_mode: 'ephemeral', map_key_ttl: '300s', map_min_page_size: 1 },
      { name: 'ttl', ...MAP, map_key_ttl: '2s' },
      { name: 'own', ...MAP, map_client_key: 'client_id', map_remove_client_on_unsubscribe: true },
      { name: 'plain' },
    ],
  });
});
after(async () => {
  for (const c of clients) c.disconnect();
  closeAllRaw();
  await stopAll();
});

const dec = new TextDecoder();
const enc = new TextEncoder();

// The SDK clients under test: every transport streamd serves the bidirectional SDK on, both codecs.
const transports = SDK_TRANSPORTS;

async function connect(name, server = srv, make = transports[name]) {
  const c = make(server);
  c.pb = /protobuf/.test(name);
  c.on('error', () => {});
  clients.push(c);
  const p = once(c, 'connected', SDK_TIMEOUT_MS + 5000);
  c.connect();
  c.connectedCtx = await p;
  return c;
}

// What the application got: JSON clients parse the data, protobuf clients get the bytes.
const asValue = (data) => (data instanceof Uint8Array ? JSON.parse(dec.decode(data)) : data);
// What a client publishes: protobuf clients send bytes.
const payload = (c, v) => (c.pb ? enc.encode(JSON.stringify(v)) : v);
// A removal has no data (protobuf decodes a missing bytes field as empty bytes).
const noData = (d) => d === undefined || d === null || (d instanceof Uint8Array && d.length === 0);
// Entries (sync, state) as { key: value }.
const view = (entries) => Object.fromEntries(entries.map((e) => [e.key, asValue(e.data)]));
const channelFor = (ns, name) => `${ns}:${name.replace(/\W/g, '_')}`;

/** Records SUB's 'sync' and 'update' events; sub.until(pred) waits (bounded) until pred() holds. */
function collectMap(sub) {
  sub.syncs = [];
  sub.updates = [];
  let waiters = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  sub.on('sync', (ctx) => { sub.syncs.push(ctx); wake(); });
  sub.on('update', (ctx) => { sub.updates.push(ctx); wake(); });
  sub.on('error', () => {});
  sub.until = (pred, what, ms = SDK_TIMEOUT_MS) => withTimeout(new Promise((resolve) => {
    const check = () => (pred() ? resolve() : waiters.push(check));
    check();
  }), ms, `${sub.channel}: ${what} (syncs ${sub.syncs.length}, updates ` +
    `${JSON.stringify(sub.updates.map((u) => [u.key, u.removed, u.offset]))})`);
  return sub;
}

/** Resolves with the 'subscribed' ctx of SUB, rejects if it goes 'unsubscribed' first. */
function subscribedOrNot(sub) {
  return withTimeout(new Promise((resolve, reject) => {
    sub.once('subscribed', resolve);
    sub.once('unsubscribed', (ctx) => reject(Object.assign(new Error(`unsubscribed ${ctx.code} ${ctx.reason}`), ctx)));
  }), SDK_TIMEOUT_MS + 5000, `${sub.channel}: subscribed`);
}

/** A map subscription that is subscribed and had its first sync (sync follows subscribed synchronously). */
async function subscribeMap(c, channel, opts = { pageSize: 2 }) {
  const sub = collectMap(c.newMapSubscription(channel, opts));
  const p = subscribedOrNot(sub);
  sub.subscribe();
  sub.subscribedCtx = await p;
  await sub.until(() => sub.syncs.length === 1, 'first sync');
  return sub;
}

async function apiOk(method, params, server = srv) {
  const res = await api(server.base, method, params, { key: API_KEY });
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json.error, undefined, `${method} ${JSON.stringify(params)}: ${res.body}`);
  return res.json.result;
}
async function apiErr(method, params) {
  const res = await api(srv.base, method, params, { key: API_KEY });
  assert.equal(res.status, 200, res.body);
  assert.ok(res.json.error, `${method} ${JSON.stringify(params)} must fail: ${res.body}`);
  return res.json.error;
}
// A rejected SDK call (or subscribe) with the server's error CODE; a failure shows what came instead.
const rejectsWith = (promise, code) => assert.rejects(promise, (e) => {
  assert.equal(e.code, code, `expected error ${code}, got ${JSON.stringify(e)} ${e.message || ''}`);
  return true;
});
const numKeys = async (channel, server = srv) => (await apiOk('map_stats', { channel }, server)).num_keys ?? 0; // 0 is left out

describe('snapshot in pages, then live updates, on every transport', () => {
  for (const name of Object.keys(transports)) {
    test(`${name}: 5 keys in 3 pages, one sync, then updates and a removal with offsets 6, 7, 8`, async () => {
      const channel = channelFor('board', name);
      for (let i = 0; i < 5; i++) {
        const r = await apiOk('map_publish', { channel, key: `k${i}`, data: { n: i } });
        assert.equal(r.offset, i + 1);
        assert.equal(typeof r.epoch, 'string');
        assert.ok(r.epoch.length > 0);
      }
      const c = await connect(name);
      const sub = await subscribeMap(c, channel);
      assert.equal(sub.subscribedCtx.recoverable, true);
      assert.equal(sub.subscribedCtx.recovered, false);
      assert.equal(sub.subscribedCtx.streamPosition.offset, 5);
      assert.deepEqual(view(sub.syncs[0].entries), { k0: { n: 0 }, k1: { n: 1 }, k2: { n: 2 }, k3: { n: 3 }, k4: { n: 4 } });
      assert.equal(sub.syncs[0].entries.length, 5);
      assert.equal(sub.updates.length, 0, 'the snapshot is no updates');

      await sub.publish('k9', payload(c, { n: 9 }));
      await sub.remove('k0');
      await apiOk('map_publish', { channel, key: 'k1', data: { n: 11 } });
      await sub.until(() => sub.updates.length >= 3, '3 updates');
      const [u9, u0, u1] = sub.updates;
      assert.deepEqual([u9.key, u9.removed, asValue(u9.data), u9.offset], ['k9', undefined, { n: 9 }, 6]);
      assert.equal(u9.info.client, c.connectedCtx.client, 'a client publish carries the publisher info');
      assert.deepEqual([u0.key, u0.removed, u0.offset], ['k0', true, 7]);
      assert.ok(noData(u0.data), `a removal has no data: ${u0.data}`);
      assert.deepEqual([u1.key, u1.removed, asValue(u1.data), u1.offset, u1.info], ['k1', undefined, { n: 11 }, 8, undefined]);
      assert.equal(await numKeys(channel), 5);
    });
  }
});

describe('writes between pages', () => {
  test('raw JSON client: the changes made between pages reach it once, in order; nothing is pushed before LIVE', async () => {
    const channel = 'board:race_raw';
    const model = new Map();
    let writes = 0; // = the stream's top offset
    const set = async (key, data) => { model.set(key, data); writes++; return apiOk('map_publish', { channel, key, data }); };
    const del = async (key) => { model.delete(key); writes++; return apiOk('map_remove', { channel, key }); };
    for (let i = 0; i < 10; i++) await set(`k0${i}`, { v: 0, i });
    const s = await connectRaw(srv.base);
    let req = { channel, type: 1, phase: 2, flag: 1, limit: 2 };
    let frozen = null;
    let epoch = null;
    const seenState = [];
    const stream = [];
    const early = [];
    let live = null;
    let streamReplies = 0;
    for (let id = 2; !live; id++) {
      assert.ok(id < 60, 'the subscribe goes LIVE in a bounded number of pages');
      const r = await call(s, { id, subscribe: req });
      early.push(...r.skipped);
      assert.equal(r.error, undefined, `${JSON.stringify(req)} -> ${JSON.stringify(r)}`);
      const res = r.subscribe;
      if (frozen === null) {
        assert.equal(res.phase, 2, 'ten keys in pages of 2: the first reply is a STATE page');
        assert.ok(res.cursor, 'more pages follow');
        assert.equal(res.state.length, 2);
        frozen = res.offset;
        epoch = res.epoch;
        assert.equal(frozen, 10);
        assert.ok(epoch);
      }
      if (res.epoch) assert.equal(res.epoch, epoch);
      if (res.phase === 2) {
        assert.equal(res.offset, frozen, 'every STATE page carries the frozen offset');
        for (const e of res.state || []) assert.ok(e.offset <= frozen, `a state entry newer than the snapshot: ${JSON.stringify(e)}`);
      }
      seenState.push(...(res.state || []));
      if (res.phase !== 2) stream.push(...(res.publications || []));
      if (!res.phase) { live = res; break; }
      if (res.phase === 1) streamReplies++;
      // The writes, between the pages: keys already sent, keys still to come, new keys, removals.
      if (id === 2) {
        const sent = new Set(res.state.map((e) => e.key));
        const later = [...model.keys()].filter((k) => !sent.has(k)).sort();
        await set(res.state[0].key, { v: 1 });          // an earlier page
        await set(later.at(-1), { v: 1 });              // a later page
        await set('k05a', { v: 1, added: true });       // new, sorts among the later keys
        await del(later.at(-2));                        // removed before its page
        await set('a-first', { v: 1, added: true });    // new, sorts before the cursor
      } else if (id === 3) {
        await del(seenState[1].key);                    // removed after its page
        await set(seenState[0].key, { v: 2 });          // changed again
      } else if (res.phase === 1 && streamReplies === 1) {
        await set('k05a', { v: 2 });                    // during the catch-up
      }
      req = res.phase === 2 && res.cursor
        ? { channel, type: 1, phase: 2, flag: 1, limit: 2, cursor: res.cursor, offset: frozen, epoch }
        : { channel, type: 1, phase: 1, flag: 1, limit: 2, offset: res.phase === 1 ? (res.offset ?? frozen) : frozen, epoch };
    }
    const top = writes;
    assert.equal(top, 18);
    assert.deepEqual(early.filter((m) => m.push), [], 'no push while the subscribe is in progress');
    assert.equal(live.offset, top);
    assert.equal(live.recoverable, true);
    assert.deepEqual(stream.map((p) => p.offset), Array.from({ length: top - frozen }, (_, i) => frozen + 1 + i),
      'the catch-up is every change after the snapshot, each once, in order');
    const keys = seenState.map((e) => e.key);
    assert.equal(new Set(keys).size, keys.length, `no key twice in the snapshot: ${keys}`);
    const state = new Map(seenState.map((e) => [e.key, e.data]));
    for (const p of stream) {
      if (p.removed) { assert.equal(p.data, undefined); state.delete(p.key); } else state.set(p.key, p.data);
    }
    assert.deepEqual(Object.fromEntries(state), Object.fromEntries(model));
    assert.equal(await numKeys(channel), model.size);
    // Live now: the next change is a push that continues the offsets.
    await set('after-live', { v: 3 });
    const push = await s.waitFor((m) => !!(m.push && m.push.pub), SDK_TIMEOUT_MS);
    assert.ok(push.push.channel === channel || (live.id && push.push.id === live.id), JSON.stringify(push));
    assert.deepEqual(push.push.pub, { key: 'after-live', data: { v: 3 }, offset: top + 1 });
    s.close();
  });

  test('SDK: writes before each page request; the one sync equals the server state', async () => {
    const channel = 'board:race_sdk';
    const model = new Map();
    let seed = 12345;
    const rand = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
    let added = 0;
    const mutate = async () => {
      const keys = [...model.keys()];
      const op = rand(3);
      if (op === 0 || keys.length < 3) {
        const key = `n${added++}`;
        model.set(key, { added: key });
        await apiOk('map_publish', { channel, key, data: { added: key } });
      } else if (op === 1) {
        const key = keys[rand(keys.length)];
        model.set(key, { changed: seed });
        await apiOk('map_publish', { channel, key, data: { changed: seed } });
      } else {
        const key = keys[rand(keys.length)];
        model.delete(key);
        await apiOk('map_remove', { channel, key });
      }
    };
    for (let i = 0; i < 10; i++) { model.set(`k${i}`, { i }); await apiOk('map_publish', { channel, key: `k${i}`, data: { i } }); }
    const emulation = `${srv.base}/emulation`;
    let hooks = 0;
    // The SDK's fetch: before a page request after the first (a STATE page with a cursor, a STREAM
    // page) goes out, two writes happen and are done.
    const hookedFetch = async (url, opts = {}) => {
      if (String(url) === emulation && hooks < 8) {
        const cmds = JSON.parse(opts.body).data.split('\n').filter(Boolean).map((l) => JSON.parse(l));
        if (cmds.some((x) => x.subscribe && x.subscribe.type === 1 && (x.subscribe.cursor || x.subscribe.phase === 1))) {
          hooks++;
          await mutate();
          await mutate();
        }
      }
      return globalThis.fetch(url, opts);
    };
    const c = await connect('http_stream JSON', srv, (s) => new Centrifuge(
      [{ transport: 'http_stream', endpoint: `${s.base}/connection/http_stream` }],
      { emulationEndpoint: `${s.base}/emulation`, timeout: SDK_TIMEOUT_MS, fetch: hookedFetch }));
    const sub = await subscribeMap(c, channel);
    assert.ok(hooks >= 4, `writes happened between pages (${hooks} times)`);
    assert.deepEqual(view(sub.syncs[0].entries), Object.fromEntries(model));
    assert.equal(sub.syncs[0].entries.length, model.size);
    assert.equal(await numKeys(channel), model.size);
    await apiOk('map_publish', { channel, key: 'k0', data: { last: true } });
    await sub.until(() => sub.updates.length === 1, 'an update after sync');
    assert.deepEqual(sub.updates.map((u) => [u.key, u.data]), [['k0', { last: true }]]);
  });
});

describe('recovery', () => {
  for (const name of ['http_stream JSON', 'WebSocket protobuf']) {
    test(`${name}: changes missed while away arrive as updates after a recovered subscribe, no second sync`, async () => {
      const channel = channelFor('board', `rec ${name}`);
      await apiOk('map_publish', { channel, key: 'a', data: { v: 1 } });
      await apiOk('map_publish', { channel, key: 'b', data: { v: 1 } });
      const c = await connect(name);
      const sub = await subscribeMap(c, channel);
      assert.deepEqual(view(sub.syncs[0].entries), { a: { v: 1 }, b: { v: 1 } });
      const gone = once(c, 'disconnected');
      c.disconnect();
      await gone;
      await apiOk('map_publish', { channel, key: 'c', data: { v: 1 } });
      await apiOk('map_publish', { channel, key: 'a', data: { v: 2 } });
      await apiOk('map_remove', { channel, key: 'b' });
      const back = subscribedOrNot(sub);
      c.connect();
      const ctx = await back;
      assert.equal(ctx.recovered, true);
      assert.equal(ctx.wasRecovering, true);
      await sub.until(() => sub.updates.length >= 3, '3 recovered updates');
      assert.deepEqual(sub.updates.map((u) => [u.key, u.removed === true, u.removed ? null : asValue(u.data), u.offset]),
        [['c', false, { v: 1 }, 3], ['a', false, { v: 2 }, 4], ['b', true, null, 5]]);
      assert.equal(sub.syncs.length, 1, 'a recovery emits no sync');
      await apiOk('map_publish', { channel, key: 'd', data: { v: 1 } });
      await sub.until(() => sub.updates.length === 4, 'a live update after the recovery');
      assert.equal(sub.updates[3].offset, 6);
      assert.equal(sub.syncs.length, 1);
    });
  }
});

describe('ephemeral maps', () => {
  test('no offsets, not recoverable; every resubscribe and reconnect is a new sync', async () => {
    const channel = 'eph:board';
    const r = await apiOk('map_publish', { channel, key: 'x', data: { v: 1 } });
    assert.equal(r.offset, undefined, 'ephemeral: no offset');
    const c = await connect('http_stream JSON');
    const sub = await subscribeMap(c, channel);
    assert.equal(sub.subscribedCtx.recoverable, false);
    assert.deepEqual(view(sub.syncs[0].entries), { x: { v: 1 } });
    await apiOk('map_publish', { channel, key: 'y', data: { v: 1 } });
    await sub.until(() => sub.updates.length === 1, 'an update');
    assert.deepEqual([sub.updates[0].key, sub.updates[0].data, sub.updates[0].offset], ['y', { v: 1 }, undefined]);
    sub.unsubscribe();
    await apiOk('map_publish', { channel, key: 'x', data: { v: 2 } });
    const again = subscribedOrNot(sub);
    sub.subscribe();
    await again;
    await sub.until(() => sub.syncs.length === 2, 'a sync after resubscribing');
    assert.deepEqual(view(sub.syncs[1].entries), { x: { v: 2 }, y: { v: 1 } });
    const gone = once(c, 'disconnected');
    c.disconnect();
    await gone;
    await apiOk('map_remove', { channel, key: 'y' });
    c.connect();
    await sub.until(() => sub.syncs.length === 3, 'a sync after reconnecting');
    assert.deepEqual(view(sub.syncs[2].entries), { x: { v: 2 } });
    assert.equal(sub.updates.length, 1, 'no updates from the resyncs');
  });
});

describe('map_clear', () => {
  test('after a clear, a reconnect gets a fresh sync (new epoch) with what was published since', async () => {
    const channel = 'board:cleared';
    await apiOk('map_publish', { channel, key: 'old1', data: 1 });
    await apiOk('map_publish', { channel, key: 'old2', data: 2 });
    const c = await connect('WebSocket JSON');
    const sub = await subscribeMap(c, channel);
    const epoch1 = sub.subscribedCtx.streamPosition.epoch;
    assert.deepEqual(view(sub.syncs[0].entries), { old1: 1, old2: 2 });
    const gone = once(c, 'disconnected');
    c.disconnect();
    await gone;
    assert.deepEqual(await apiOk('map_clear', { channel }), {});
    assert.equal(await numKeys(channel), 0);
    const r = await apiOk('map_publish', { channel, key: 'new', data: 3 });
    assert.notEqual(r.epoch, epoch1, 'a cleared channel has a new epoch');
    assert.equal(r.offset, 1);
    c.connect();
    await sub.until(() => sub.syncs.length === 2, 'a second sync after the clear', SDK_TIMEOUT_MS + 5000);
    assert.deepEqual(view(sub.syncs[1].entries), { new: 3 });
    assert.equal(sub.updates.length, 0);
  });
});

describe('errors', () => {
  test('subscription type mismatch: 103 both ways', async () => {
    const c = await connect('http_stream JSON');
    const streamOnMap = c.newSubscription('board:typecheck');
    streamOnMap.on('error', () => {});
    const p1 = subscribedOrNot(streamOnMap);
    streamOnMap.subscribe();
    await rejectsWith(p1, 103);
    const mapOnStream = collectMap(c.newMapSubscription('plain:typecheck'));
    const p2 = subscribedOrNot(mapOnStream);
    mapOnStream.subscribe();
    await rejectsWith(p2, 103);
  });

  test('server API: 107 without key or on a stream namespace, 102 unknown namespace, suppressed removal', async () => {
    assert.equal((await apiErr('map_publish', { channel: 'board:api', data: { v: 1 } })).code, 107);
    assert.equal((await apiErr('map_publish', { channel: 'plain:api', key: 'k', data: { v: 1 } })).code, 107);
    assert.equal((await apiErr('map_publish', { channel: 'nope:api', key: 'k', data: { v: 1 } })).code, 102);
    assert.equal((await apiErr('map_publish', { channel: 'board:api', key: 'k'.repeat(1025), data: { v: 1 } })).code, 107);
    assert.equal((await apiErr('map_remove', { channel: 'board:api' })).code, 107);
    const r = await apiOk('map_remove', { channel: 'board:api', key: 'missing' });
    assert.deepEqual([r.suppressed, r.suppress_reason, r.offset], [true, 'key_not_found', undefined], JSON.stringify(r));
  });

  test('server API map_read_state pages the keys, map_read_stream reads the changes', async () => {
    const channel = 'board:readapi';
    for (const k of ['c', 'a', 'b']) await apiOk('map_publish', { channel, key: k, data: { k } });
    await apiOk('map_remove', { channel, key: 'c' });
    const p1 = await apiOk('map_read_state', { channel, limit: 1 });
    assert.deepEqual([p1.entries.map((e) => [e.key, e.data, e.offset]), p1.cursor, p1.offset],
      [[['a', { k: 'a' }, 2]], 'a', 4]);
    const p2 = await apiOk('map_read_state', { channel, limit: 10, cursor: p1.cursor });
    assert.deepEqual([p2.entries.map((e) => e.key), p2.cursor], [['b'], undefined]);
    assert.deepEqual((await apiOk('map_read_state', { channel })).entries, [], 'limit 0: the position only');
    const st = await apiOk('map_read_stream', { channel, since_offset: 1, since_epoch: p1.epoch, limit: -1 });
    assert.deepEqual(st.entries.map((e) => [e.offset, e.key, e.removed === true]),
      [[2, 'a', false], [3, 'b', false], [4, 'c', true]]);
    assert.equal((await apiErr('map_read_stream', { channel, since_offset: 1, since_epoch: 'other', limit: 1 })).code, 112);
  });

  test('map_client_key "client_id": a client publish is stored under its client id, removed when it leaves', async () => {
    const watcher = await connect('http_stream JSON');
    const seen = await subscribeMap(watcher, 'own:presence');
    const c = await connect('WebSocket JSON');
    const sub = await subscribeMap(c, 'own:presence');
    await sub.publish('whatever', { here: true });
    await sub.until(() => sub.updates.length === 1, 'the update');
    assert.equal(sub.updates[0].key, c.connectedCtx.client);
    assert.deepEqual(sub.updates[0].data, { here: true });
    // map_remove_client_on_unsubscribe: its key goes with its subscription
    c.disconnect();
    await seen.until(() => seen.updates.length === 2, 'the removal when the client left');
    assert.deepEqual([seen.updates[1].key, seen.updates[1].removed], [c.connectedCtx.client, true]);
    assert.equal((await apiOk('map_stats', { channel: 'own:presence' })).num_keys, 0);
  });
});

describe('client permissions (anonymous connections, no client_insecure)', () => {
  let srv2;
  before(async () => {
    const subOk = { allow_subscribe_for_client: true, allow_subscribe_for_anonymous: true };
    srv2 = await startServer({
      http_stream: true, allow_anonymous_connect_without_token: true, api_key: API_KEY,
      namespaces: [
        { name: 'ro', ...MAP, ...subOk },
        { name: 'rw', ...MAP, ...subOk, map_allow_publish_for_subscriber: true, map_allow_publish_for_anonymous: true,
          map_allow_remove_for_subscriber: true, map_allow_remove_for_anonymous: true },
      ],
    });
  });

  test('map publish and remove need the map_allow_* options: else 103', async () => {
    const c = await connect('http_stream JSON', srv2);
    const ro = await subscribeMap(c, 'ro:x');
    await rejectsWith(ro.publish('k', { v: 1 }), 103);
    await rejectsWith(ro.remove('k'), 103);
    const rw = await subscribeMap(c, 'rw:x');
    await rw.publish('k', { v: 1 });
    await rw.remove('k');
    await rw.until(() => rw.updates.length === 2, 'the publish and the removal');
    assert.deepEqual(rw.updates.map((u) => [u.key, u.removed === true, u.offset]), [['k', false, 1], ['k', true, 2]]);
    // for_subscriber only: a client that is not subscribed may not write.
    const other = await connect('http_stream JSON', srv2);
    await rejectsWith(other.mapPublish('rw:x', 'k2', { v: 1 }), 103);
    await rejectsWith(other.mapRemove('rw:x', 'k'), 103);
    assert.equal(await numKeys('ro:x', srv2), 0);
    assert.equal(await numKeys('rw:x', srv2), 0);
  });
});

describe('key TTL', () => {
  test('a key not written again expires: a removal update, and map_stats 0', async () => {
    const channel = 'ttl:short';
    const c = await connect('http_stream JSON');
    const sub = await subscribeMap(c, channel);
    assert.deepEqual(sub.syncs[0].entries, [], 'an empty map syncs with no entries');
    await apiOk('map_publish', { channel, key: 'brief', data: { v: 1 } });
    await sub.until(() => sub.updates.length === 1, 'the publish');
    assert.equal(await numKeys(channel), 1);
    await sub.until(() => sub.updates.length === 2, 'the expiry within 5 s', 5000);
    const [set, gone] = sub.updates;
    assert.deepEqual([set.key, set.offset], ['brief', 1]);
    assert.deepEqual([gone.key, gone.removed, gone.offset], ['brief', true, 2]);
    assert.equal(await numKeys(channel), 0);
  });
});

describe('map presence (map_clients, map_users)', () => {
  test('subscribers of room:1 are keys of clients:room:1 (client id, with info; removed when they leave) and users:room:1 (user id; expires)', async () => {
    const secret = 'map-presence-secret';
    const psrv = await startServer({
      http_stream: true, sse: true, api_key: API_KEY, token_hmac_secret_key: secret,
      namespaces: [
        { name: 'room', allow_subscribe_for_client: true, map_clients_presence_channel_prefix: 'clients:',
          map_users_presence_channel_prefix: 'users:' },
        { name: 'clients', subscription_type: 'map_clients', map_mode: 'recoverable', map_key_ttl: '60s',
          allow_subscribe_for_client: true, map_min_page_size: 1 },
        { name: 'users', subscription_type: 'map_users', map_mode: 'ephemeral', map_key_ttl: '60s',
          allow_subscribe_for_client: true, map_min_page_size: 1 },
      ],
    });
    const as = (user, name = 'WebSocket JSON') =>
      connect(name, psrv, (srv2) => transports[name](srv2, { token: hsToken({ sub: user, exp: now() + 600 }, secret) }));
    const watcher = await as('watcher');
    const clientsSub = collectMap(watcher.newMapClientsSubscription('clients:room:1', { pageSize: 1 }));
    const usersSub = collectMap(watcher.newMapUsersSubscription('users:room:1', { pageSize: 1 }));
    for (const sub of [clientsSub, usersSub]) {
      const p = subscribedOrNot(sub);
      sub.subscribe();
      await p;
      await sub.until(() => sub.syncs.length === 1, 'first sync');
      assert.deepEqual(sub.syncs[0].entries, []);
    }
    // a stream subscriber of room:1 (http_stream protobuf) appears in both
    const alice = await as('alice', 'http_stream protobuf');
    const room = alice.newSubscription('room:1');
    const joined = once(room, 'subscribed');
    room.subscribe();
    await joined;
    await clientsSub.until(() => clientsSub.updates.length === 1, 'alice in clients');
    const added = clientsSub.updates[0];
    assert.equal(added.key, alice.connectedCtx.client);
    assert.equal(added.removed, undefined);
    assert.equal(added.info.user, 'alice');
    assert.equal(added.info.client, alice.connectedCtx.client);
    await usersSub.until(() => usersSub.updates.length === 1, 'alice in users');
    assert.equal(usersSub.updates[0].key, 'alice');
    // a second connection of alice: a second client key, the user key is there already
    const alice2 = await as('alice', 'http_stream JSON');
    const room2 = alice2.newSubscription('room:1');
    const joined2 = once(room2, 'subscribed');
    room2.subscribe();
    await joined2;
    await clientsSub.until(() => clientsSub.updates.length === 2, 'alice2 in clients');
    assert.equal(clientsSub.updates[1].key, alice2.connectedCtx.client);
    // a late reader gets both clients and the one user in its snapshot
    const late = await as('late', 'SSE JSON');
    const lateClients = collectMap(late.newMapClientsSubscription('clients:room:1', { pageSize: 1 })); // 2 pages
    const lateSubscribed = subscribedOrNot(lateClients);
    lateClients.subscribe();
    await lateSubscribed;
    await lateClients.until(() => lateClients.syncs.length === 1, 'late sync');
    assert.deepEqual(lateClients.syncs[0].entries.map((e) => e.key).sort(),
      [alice.connectedCtx.client, alice2.connectedCtx.client].sort());
    // leaving removes the client key; the user key stays until its TTL
    room.unsubscribe();
    await clientsSub.until(() => clientsSub.updates.length === 3, 'alice leaves clients');
    assert.deepEqual([clientsSub.updates[2].key, clientsSub.updates[2].removed], [alice.connectedCtx.client, true]);
    alice2.disconnect();
    await clientsSub.until(() => clientsSub.updates.length === 4, 'alice2 disconnects');
    assert.deepEqual([clientsSub.updates[3].key, clientsSub.updates[3].removed], [alice2.connectedCtx.client, true]);
    assert.equal(usersSub.updates.length, 1, 'a user key is not removed on leave (it expires)');
    const stats = await apiOk('map_stats', { channel: 'users:room:1' }, psrv);
    assert.equal(stats.num_keys, 1);
  });
});
