// Graceful shutdown (INTERFACE.md Signals, PROTOCOL.md §4.6): SIGTERM/SIGINT ⇒ every client gets
// Disconnect 3001 "shutdown", every stream ends, the process exits with code 0.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG, API_KEY, sanitizerReport } from './lib/server.js';
import { withTimeout, api } from './lib/http.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';
import { connectedClient, subscribe, closeAllClients, once } from './lib/sdk.js';
import http from 'node:http';

/**
 * Opens one http_stream with a connect command and reads it to its end. Resolves with
 * { status, connected, lines } (lines: the complete frames), or { error } when the connection failed
 * before any response (refused once the server stopped listening).
 */
function streamToEnd(port) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/connection/http_stream', method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json' } });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      const done = (error) => {
        const lines = text.split('\n').filter((l) => l.length > 0);
        resolve({ status: res.statusCode, connected: res.statusCode === 200 && /"connect":/.test(lines[0] || ''), lines, text, error });
      };
      res.on('end', () => done(null));
      res.on('error', (e) => done(e.message));
      res.on('aborted', () => done('aborted'));
    });
    req.on('error', (e) => resolve({ error: e.message }));
    req.end(JSON.stringify({ id: 1, connect: { name: 'storm' } }));
  });
}

const EXIT_WITHIN_MS = 10000;

function assertCleanExit(r, signal) {
  assert.equal(r.timedOut, false, `no exit within the fixture's timeout after ${signal}\n${r.stderr.slice(-4000)}`);
  assert.equal(r.signal, null, `killed by a signal\n${r.stderr.slice(-4000)}`);
  assert.equal(r.code, 0, `exit code\n${r.stderr.slice(-4000)}`);
  assert.ok(!sanitizerReport(r.stderr), `sanitizer report:\n${r.stderr.slice(-8000)}`);
}

// Each test has its own server: they run concurrently.
describe('graceful shutdown', { concurrency: true }, () => {
  after(async () => {
    closeAllClients();
    closeAllRaw();
    await stopAll();
  });

  it('SIGTERM ⇒ Disconnect 3001 "shutdown" to an SDK client and raw clients, exit code 0', { timeout: 60000 }, async () => {
    const srv = await startServer({ ...BASE_CONFIG });
    const c = await connectedClient(srv.base);
    const sub = await subscribe(c, 'shutdown');
    const raw1 = await connectRaw(srv.base);
    await call(raw1, { subscribe: { channel: 'shutdown' }, id: 2 });
    const raw2 = await connectRaw(srv.base); // connected, not subscribed
    // A raw client that sent nothing yet beyond connect and whose data is in flight.
    const raw3 = await connectRaw(srv.base);
    await call(raw3, { subscribe: { channel: 'shutdown' }, id: 2 });
    await sub.publish({ before: 'shutdown' });
    assert.deepEqual((await sub.nextPub()).data, { before: 'shutdown' });

    const connecting = once(c, 'connecting', EXIT_WITHIN_MS);
    const t0 = Date.now();
    const stopped = srv.stop('SIGTERM');

    // SDK: 3001 is a reconnect code ⇒ 'connecting' with the server's code and reason.
    const ctx = await connecting;
    assert.deepEqual(ctx, { code: 3001, reason: 'shutdown' });
    c.disconnect(); // stop its reconnect attempts against the dead server

    for (const s of [raw1, raw2, raw3]) {
      const d = await s.waitFor((m) => !!(m.push && m.push.disconnect), EXIT_WITHIN_MS);
      assert.deepEqual(d, { push: { disconnect: { code: 3001, reason: 'shutdown' } } });
      assert.deepEqual(await s.expectEnd(EXIT_WITHIN_MS), [], 'the stream ends after the disconnect push');
    }

    const r = await withTimeout(stopped, EXIT_WITHIN_MS + 1000, 'streamd exits after SIGTERM');
    assertCleanExit(r, 'SIGTERM');
    assert.ok(Date.now() - t0 < EXIT_WITHIN_MS, 'exits promptly');
  });

  it('SIGINT ⇒ the same: 3001 to a connected client, exit code 0', { timeout: 60000 }, async () => {
    const srv = await startServer({ ...BASE_CONFIG });
    const s = await connectRaw(srv.base);
    const stopped = srv.stop('SIGINT');
    const d = await s.waitFor((m) => !!(m.push && m.push.disconnect), EXIT_WITHIN_MS);
    assert.deepEqual(d.push.disconnect, { code: 3001, reason: 'shutdown' });
    await s.expectEnd(EXIT_WITHIN_MS);
    assertCleanExit(await stopped, 'SIGINT');
  });

  it('SIGTERM with no client connected ⇒ exit code 0', { timeout: 30000 }, async () => {
    const srv = await startServer({ ...BASE_CONFIG });
    assertCleanExit(await srv.stop('SIGTERM'), 'SIGTERM');
  });

  // Shutdown order (item: a stream registered after the empty-registry wait could still be suspended at
  // MHD_stop_daemon, which aborts the process; the listen socket was closed while MHD's threads could
  // still use it): SIGTERM in the middle of a connect storm. Every stream that was connected gets
  // Disconnect 3001 and ends, later connects get 503 or find no listener, and the exit status is 0.
  for (let round = 1; round <= 3; round++) {
    it(`SIGTERM during a connect storm ⇒ exit 0, every connected stream got 3001 (round ${round})`, { timeout: 60000 }, async () => {
      const srv = await startServer({ ...BASE_CONFIG });
      const results = [];
      let stop = false;
      const worker = async () => {
        while (!stop) {
          const p = streamToEnd(srv.port);
          results.push(p);
          const r = await Promise.race([p, new Promise((res) => setTimeout(() => res(null), 2))]);
          if (r && r.error && !r.status) break; // refused: the server stopped listening
        }
      };
      const workers = Array.from({ length: 16 }, worker);
      await new Promise((r) => setTimeout(r, 300 + 100 * round));
      const exited = srv.stop('SIGTERM');
      const r = await withTimeout(exited, EXIT_WITHIN_MS + 5000, 'streamd exits after SIGTERM');
      stop = true;
      await Promise.all(workers);
      const all = await Promise.all(results);
      assertCleanExit(r, 'SIGTERM');
      const connected = all.filter((x) => x.connected);
      assert.ok(connected.length > 10, `clients connected before the signal (${connected.length})`);
      for (const x of connected) {
        assert.equal(x.lines[x.lines.length - 1], '{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}',
          `a connected stream ends with Disconnect 3001: ${JSON.stringify(x.text.slice(-300))} ${x.error || ''}`);
      }
      for (const x of all.filter((y) => y.status && !y.connected)) assert.equal(x.status, 503, x.text);
      console.log(`storm: ${connected.length} connected, ${all.filter((y) => y.status === 503).length} got 503, ${all.filter((y) => !y.status).length} refused`);
    });
  }

  it('SIGTERM while a client is not reading a full stream ⇒ still exits with code 0', { timeout: 60000 }, async () => {
    // A big queue so that the data stays queued for the client instead of ending it with 3008.
    const srv = await startServer({ ...BASE_CONFIG, client_queue_max_size: 64 * 1024 * 1024 });
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'stuck' }, id: 2 });
    s.pause();
    // About 12 MB: more than the socket buffers hold, so the server has data it cannot write.
    const data = { pad: 'p'.repeat(60 * 1024) };
    for (let i = 0; i < 200; i++) {
      const r = await api(srv.base, 'publish', { channel: 'stuck', data }, { key: API_KEY });
      assert.equal(r.status, 200);
    }
    // streamd gives streams that cannot be flushed a bounded grace period (10 s) before it exits.
    const t0 = Date.now();
    const r = await srv.stop('SIGTERM');
    assertCleanExit(r, 'SIGTERM');
    assert.ok(Date.now() - t0 < 15000, `exits within the grace period (${Date.now() - t0} ms)`);
    s.close();
  });
});
