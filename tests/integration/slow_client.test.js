// client_queue_max_size (PROTOCOL.md §4.6 code 3008): a subscriber that does not read its stream while a
// lot is published is disconnected with 3008 "slow"; the other subscribers are not held back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { api } from './lib/http.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';

const QUEUE_MAX = 256 * 1024;
const COUNT = 300;
const PAD = 50 * 1024; // COUNT * PAD = 15 MB: far more than the socket buffers and the queue hold

describe('slow client', () => {
  let srv;

  before(async () => {
    // Pings far apart: the raw clients here do not answer them.
    srv = await startServer({ ...BASE_CONFIG, client_queue_max_size: QUEUE_MAX, ping_interval: '60s', pong_timeout: '10s' });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('a subscriber that never reads gets Disconnect 3008; a reading one gets everything', { timeout: 90000 }, async () => {
    const slow = await connectRaw(srv.base);
    await call(slow, { subscribe: { channel: 'firehose' }, id: 2 });
    const fast = await connectRaw(srv.base);
    await call(fast, { subscribe: { channel: 'firehose' }, id: 2 });
    slow.pause();

    const pad = 'f'.repeat(PAD);
    let received = 0;
    const reader = (async () => {
      for (let i = 0; i < COUNT; i++) {
        const m = await fast.waitFor((f) => !!f.push, 30000);
        assert.equal(m.push.pub.data.seq, i, 'the reading subscriber gets every publication in order');
        received++;
      }
    })();
    for (let i = 0; i < COUNT; i++) {
      const r = await api(srv.base, 'publish', { channel: 'firehose', data: { seq: i, pad } }, { key: API_KEY });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { result: {} });
    }
    await reader;
    assert.equal(received, COUNT);

    slow.resume();
    const frames = (await slow.expectEnd(30000)).filter((f) => Object.keys(f).length > 0); // minus pings
    assert.ok(frames.length >= 1, 'the slow stream carries at least the disconnect push');
    const last = frames[frames.length - 1];
    assert.deepEqual(last, { push: { disconnect: { code: 3008, reason: 'slow' } } });
    const pubs = frames.slice(0, -1);
    assert.ok(pubs.length < COUNT, `the slow client was cut off (${pubs.length} of ${COUNT} delivered)`);
    pubs.forEach((f, i) => {
      assert.ok(f.push && f.push.pub, `frame ${i} is a publication`);
      assert.equal(f.push.pub.data.seq, i, 'what was delivered is an unbroken prefix');
    });

    // The reading subscriber is still connected and served.
    assert.deepEqual(await call(fast, { unsubscribe: { channel: 'firehose' }, id: 3 }), { id: 3, unsubscribe: {}, skipped: [] });
    fast.close();
  });
});
