// History streams under hostile reads (issue 10, item 7): a history call or a positioned subscribe on
// a channel without a stream stores nothing (admin `info` counts the streams), and history_max_streams
// caps how many publications can create: past it a publish needing a new stream is refused with 106,
// by the API and for clients alike, and a warning is logged.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { api } from './lib/http.js';
import { connectedClient, subscribe, closeAllClients } from './lib/sdk.js';
import { startAdminServer, streamctlJson, removeAdminDirs } from './lib/admin.js';

const streams = async (socket) => (await streamctlJson(socket, ['info'])).result.history_streams;

describe('history streams: reads create none, publications up to history_max_streams', () => {
  let srv;
  let socket;

  before(async () => {
    ({ srv, socket } = await startAdminServer({
      ...BASE_CONFIG,
      history_size: 10,
      history_ttl: '300s',
      allow_positioning: true,
      history_max_streams: 3,
    }));
  });

  after(async () => {
    closeAllClients();
    await stopAll();
    removeAdminDirs();
  });

  it('history of many unknown channels answers offset 0 with a stable epoch and makes no stream', async () => {
    for (let i = 0; i < 300; i++) {
      const res = await api(srv.base, 'history', { channel: `probe-${i}`, limit: -1 }, { key: API_KEY });
      assert.equal(res.status, 200, res.body);
      assert.ok(res.json.result, res.body);
      assert.deepEqual(res.json.result.publications ?? [], []);
      assert.equal(res.json.result.offset, 0);
      assert.match(res.json.result.epoch, /^[a-zA-Z]{8}$/);
    }
    const a = await api(srv.base, 'history', { channel: 'probe-7' }, { key: API_KEY });
    const b = await api(srv.base, 'history', { channel: 'probe-7' }, { key: API_KEY });
    assert.equal(a.json.result.epoch, b.json.result.epoch);
    const c = await connectedClient(srv.base);
    const sub = await subscribe(c, 'probe-positioned', { positioned: true });
    assert.equal(sub.subscribedCtx.streamPosition.offset, 0);
    assert.equal(await streams(socket), 0);
  });

  it('a publication keeps the epoch that reads saw', async () => {
    const before = await api(srv.base, 'history', { channel: 'first' }, { key: API_KEY });
    const pub = await api(srv.base, 'publish', { channel: 'first', data: { n: 1 } }, { key: API_KEY });
    assert.deepEqual(pub.json.result, { offset: 1, epoch: before.json.result.epoch });
    assert.equal(await streams(socket), 1);
  });

  it('at the cap a publication that needs a new stream gets 106; existing streams go on', async () => {
    for (const ch of ['second', 'third']) {
      const res = await api(srv.base, 'publish', { channel: ch, data: {} }, { key: API_KEY });
      assert.equal(res.json.result.offset, 1, res.body);
    }
    const refused = await api(srv.base, 'publish', { channel: 'fourth', data: {} }, { key: API_KEY });
    assert.deepEqual(refused.json.error, { code: 106, message: 'limit exceeded' });
    const again = await api(srv.base, 'publish', { channel: 'first', data: {} }, { key: API_KEY });
    assert.equal(again.json.result.offset, 2);
    const c = await connectedClient(srv.base);
    await assert.rejects(c.publish('fifth', { n: 1 }), (e) => e.code === 106 && e.message === 'limit exceeded');
    await c.publish('second', { n: 2 });
    assert.equal(await streams(socket), 3);
    assert.match(srv.stderr, /history_max_streams/);
  });
});
