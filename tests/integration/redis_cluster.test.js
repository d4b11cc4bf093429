// Several streamd nodes on one real redis-server (engine = "redis", REDIS.md): a publication through
// one node's API or one node's client reaches subscribers on the other, history and presence are the
// same from every node, and a client that reconnects to another node recovers what it missed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { connectedClient, subscribe, closeAllClients } from './lib/sdk.js';
import { api as apiCall, delay } from './lib/http.js';
import { startRedis, stopAllRedis, redisAvailable } from './lib/redis.js';

const chat = {
  name: 'chat', presence: true, join_leave: true, history_size: 10, history_ttl: '300s',
  allow_subscribe_for_client: true, allow_publish_for_subscriber: true, allow_presence_for_subscriber: true,
  allow_history_for_subscriber: true, allow_recovery: true,
};

let redis, a, b;
before(async () => {
  if (!redisAvailable) return;
  redis = await startRedis();
  const cfg = {
    http_stream: true, client_insecure: true, api_key: API_KEY, engine: 'redis', redis_address: redis.address,
    redis_prefix: `t${process.pid}`, namespaces: [chat], health: true,
  };
  [a, b] = await Promise.all([startServer(cfg), startServer(cfg)]);
});
after(async () => {
  closeAllClients();
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
