// Server pings and client pongs (PROTOCOL.md §3.5): pings are "{}" lines every ping_interval (the first
// at a random point in [interval/2, interval)); a client that does not answer within pong_timeout gets
// Disconnect 3012 "no pong" and its stream ends.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG } from './lib/server.js';
import { withTimeout } from './lib/http.js';
import { connectRaw, closeAllRaw, call, isPing } from './lib/raw.js';
import { connectedClient, subscribe, closeAllClients, pongsSent } from './lib/sdk.js';

const PING_MS = 2000;
const PONG_MS = 1000;
// Scheduling slack: sanitizer builds on a loaded machine.
const SLACK_MS = 1500;

/** Polls COND every 50 ms until it is true (bounded by TIMEOUT_MS). */
async function until(cond, timeoutMs, what) {
  await withTimeout((async () => {
    while (!cond()) await new Promise((r) => setTimeout(r, 50));
  })(), timeoutMs, what);
}

// The tests wait for timers, not for the CPU: they run concurrently, each with its own clients.
describe('pings and pongs (ping_interval 2s, pong_timeout 1s)', { concurrency: true }, () => {
  let srv;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, ping_interval: '2s', pong_timeout: '1s' });
  });

  after(async () => {
    closeAllClients();
    closeAllRaw();
    await stopAll();
  });

  it('the connect reply announces ping 2 and pong true', async () => {
    const s = await connectRaw(srv.base);
    assert.equal(s.connectReply.ping, 2);
    assert.equal(s.connectReply.pong, true);
    s.close();
  });

  it('an SDK client stays connected through several pings, answering each', { timeout: 30000 }, async () => {
    const c = await connectedClient(srv.base);
    const events = [];
    for (const ev of ['connecting', 'disconnected', 'error']) c.on(ev, (ctx) => events.push([ev, ctx]));
    const sub = await subscribe(c, 'ping-sdk');
    const client = c.connectedCtx.client;
    // Four pings take at most 1.999 + 3 * 2 s.
    await until(() => pongsSent(c) >= 4, 4 * PING_MS + 4 * SLACK_MS, 'four pongs sent by the SDK');
    await c.settled();
    assert.ok(c.emulationStatuses.every((st) => st === 204), `emulation statuses ${c.emulationStatuses}`);
    assert.deepEqual(events, [], 'no reconnect, no disconnect, no error');
    assert.equal(c.state, 'connected');
    // Still the same, working connection.
    await sub.publish({ alive: true });
    const p = await sub.nextPub();
    assert.deepEqual(p.data, { alive: true });
    assert.equal(p.info.client, client);
    c.disconnect();
  });

  it('a raw client that answers pings stays connected', { timeout: 30000 }, async () => {
    const s = await connectRaw(srv.base);
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) {
      const line = await s.nextLine(PING_MS + SLACK_MS);
      assert.equal(line, '{}', `ping ${i + 1}`);
      assert.equal((await s.pong()).status, 204);
    }
    // Three pings: the first within [1, 2) s, then every 2 s.
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= PING_MS / 2 + 2 * PING_MS - 300, `three pings came after ${elapsed} ms`);
    assert.deepEqual(await call(s, { subscribe: { channel: 'ping-raw' }, id: 2 }), { id: 2, subscribe: {}, skipped: [] });
    s.close();
  });

  it('a raw client that never pongs gets Disconnect 3012 "no pong" within ping_interval + pong_timeout', { timeout: 30000 }, async () => {
    const t0 = Date.now();
    const s = await connectRaw(srv.base);
    const first = await s.nextJSON(PING_MS + SLACK_MS);
    const tPing = Date.now() - t0;
    assert.ok(isPing(first), `the first frame after the connect reply is a ping: ${JSON.stringify(first)}`);
    assert.ok(tPing >= PING_MS / 2 - 200, `first ping after ${tPing} ms, expected >= ${PING_MS / 2}`);
    assert.ok(tPing < PING_MS + SLACK_MS, `first ping after ${tPing} ms, expected < ${PING_MS}`);

    const d = await s.nextJSON(PONG_MS + SLACK_MS);
    const tDisconnect = Date.now() - t0;
    assert.deepEqual(d, { push: { disconnect: { code: 3012, reason: 'no pong' } } });
    assert.ok(tDisconnect - tPing >= PONG_MS - 200, `disconnect ${tDisconnect - tPing} ms after the ping, expected ~${PONG_MS}`);
    assert.ok(tDisconnect < PING_MS + PONG_MS + SLACK_MS, `disconnected after ${tDisconnect} ms`);
    assert.deepEqual(await s.expectEnd(SLACK_MS), []);
  });

  it('after a 3012 the session is gone: a late pong is answered 204 and dropped', { timeout: 30000 }, async () => {
    const s = await connectRaw(srv.base);
    assert.equal(await s.nextLine(PING_MS + SLACK_MS), '{}');
    const d = await s.nextJSON(PONG_MS + SLACK_MS);
    assert.deepEqual(d, { push: { disconnect: { code: 3012, reason: 'no pong' } } });
    await s.expectEnd(SLACK_MS);
    // The session is gone; its pong is accepted and dropped.
    assert.equal((await s.pong()).status, 204);
  });
});

// A ping is queued on the timer thread, not on the core loop that writes the stream: the loop must be
// told at once (libmicrohttpd has no wake-up of its own in external-poll mode), or the ping reaches the
// client only when the loop next wakes, up to a second later, and a short pong_timeout ends a session
// whose client answered every ping in time. This client answers 300 ms after each ping, which leaves the
// stream's loop asleep until 300 ms after the next ping is due (it wakes once a second by itself).
describe('a short pong_timeout (ping_interval 1s, pong_timeout 500ms)', () => {
  let srv;
  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, ping_interval: '1s', pong_timeout: '500ms' });
  });
  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('a raw client that answers each ping 300 ms after it stays connected through five pings', { timeout: 30000 }, async () => {
    const s = await connectRaw(srv.base);
    for (let i = 0; i < 5; i++) {
      const frame = await s.nextJSON(1000 + SLACK_MS);
      assert.ok(isPing(frame), `frame ${i + 1} is a ping, not ${JSON.stringify(frame)}`);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await s.pong()).status, 204);
    }
    assert.deepEqual(await call(s, { subscribe: { channel: 'ping-short' }, id: 2 }), { id: 2, subscribe: {}, skipped: [] });
    s.close();
  });
});
