// client_queue_max_size (PROTOCOL.md §4.6 code 3008): a subscriber that does not read its stream while a
// lot is published is disconnected with 3008 "slow"; the other subscribers are not held back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { api } from './lib/http.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';

const QUEUE_MAX = 2 * 1024 * 1024;
// COUNT * PAD = 15 MB: far more than the socket buffers and the queue hold. Frames much larger than
// one write of the HTTP layer: the frame being written when the queue overflows is partly out already,
// and must still end whole before the disconnect push (a broken line would be all the SDK sees).
const COUNT = 75;
const PAD = 200 * 1024;

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

  it('a subscriber that never reads gets Disconnect 3008 after whole frames; a reading one gets everything', { timeout: 90000 }, async () => {
    const slow = await connectRaw(srv.base);
    await call(slow, { subscribe: { channel: 'firehose' }, id: 2 });
    const fast = await connectRaw(srv.base);
    await call(fast, { subscribe: { channel: 'firehose' }, id: 2 });
    slow.pause();

    const pad = 'f'.repeat(PAD);
    let received = 0;
    let progress = () => {};
    const reader = (async () => {
      for (let i = 0; i < COUNT; i++) {
        const m = await fast.waitFor((f) => !!f.push, 30000);
        assert.ok(m.push.pub, `the reading subscriber gets publications, not ${JSON.stringify(m).slice(0, 200)}`);
        assert.equal(m.push.pub.data.seq, i, 'the reading subscriber gets every publication in order');
        received++;
        progress();
      }
    })();
    reader.catch(() => progress());
    for (let i = 0; i < COUNT; i++) {
      // Keep the reading subscriber at most 4 publications (800 KB) behind: well inside its queue
      // whatever the speed of this process, so only the subscriber that does not read overflows.
      while (received < i - 4) {
        await Promise.race([new Promise((r) => { progress = r; }), reader]);
      }
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

  it('subscribers that come and go during a stream of publications do not disturb the others', { timeout: 90000 }, async () => {
    const stay = [];
    for (let i = 0; i < 5; i++) {
      const s = await connectRaw(srv.base);
      await call(s, { subscribe: { channel: 'churn' }, id: 2 });
      stay.push(s);
    }
    const N = 200;
    let publishing = true;
    const churn = (async () => {
      let k = 0;
      while (publishing) {
        const s = await connectRaw(srv.base);
        await s.emulate([{ subscribe: { channel: 'churn' }, id: 2 }]);
        if (k++ % 2) await s.nextJSON(); // sometimes leave right after the subscribe, sometimes mid-stream
        s.close();
      }
      return k;
    })();
    for (let i = 0; i < N; i++) {
      const r = await api(srv.base, 'publish', { channel: 'churn', data: { i } }, { key: API_KEY });
      assert.equal(r.status, 200);
    }
    publishing = false;
    const churned = await churn;
    assert.ok(churned > 0);
    for (const s of stay) {
      for (let i = 0; i < N; i++) {
        const f = await s.waitFor((m) => !!m.push);
        assert.equal(f.push.pub.data.i, i);
      }
      s.close();
    }
  });
});
