// Shutdown while WebSocket clients upgrade and publications wake their sessions (ws_stop against the
// MHD threads still inside the upgrade handler and the wakers still inside the wake callback): the
// process exits 0 with no sanitizer report (run it against the ASan build to see use-after-free).
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, stopAll, API_KEY, sanitizerReport } from './lib/server.js';
import { delay, withTimeout } from './lib/http.js';
import { openWsRaw, closeAllWsRaw } from './lib/wsraw.js';

const ROUNDS = 4;

after(async () => {
  closeAllWsRaw();
  await stopAll();
});

/** Publishes to CHANNEL over one keep-alive connection until STOP() is true or the server is gone. */
async function publisher(srv, channel, stop) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const body = JSON.stringify({ channel, data: { pad: 'x'.repeat(512) } });
  while (!stop()) {
    const ok = await new Promise((resolve) => {
      const req = http.request(`${srv.base}/api/publish`, { method: 'POST', agent,
        headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY } }, (res) => {
        res.resume();
        res.on('end', () => resolve(true));
      });
      req.on('error', () => resolve(false));
      req.end(body);
    });
    if (!ok) break;
  }
  agent.destroy();
}

/** Opens WebSockets that connect and subscribe to CHANNEL, one after another, until STOP(). */
async function upgrader(srv, channel, stop) {
  while (!stop()) {
    try {
      const c = await openWsRaw(srv.port);
      c.send(0x1, '{"id":1,"connect":{}}');
      c.send(0x1, JSON.stringify({ id: 2, subscribe: { channel } }));
      c.socket.on('data', () => {});
    } catch {
      if (!stop()) await delay(5); // refused (503) or reset during shutdown
    }
  }
}

describe('WebSocket shutdown under load', () => {
  test('SIGTERM while clients upgrade and publications flow ⇒ exit 0, no sanitizer report', { timeout: 120000 }, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const srv = await startServer({ client_insecure: true, api_key: API_KEY, ping_interval: '1s', pong_timeout: '0s' });
      let stopping = false;
      const stop = () => stopping;
      const load = [];
      for (let i = 0; i < 4; i++) load.push(publisher(srv, 'load', stop));
      for (let i = 0; i < 8; i++) load.push(upgrader(srv, 'load', stop));
      await delay(1000 + 150 * round);
      const r = await withTimeout(srv.stop('SIGTERM'), 30000, 'streamd exits after SIGTERM');
      stopping = true;
      await Promise.all(load);
      closeAllWsRaw();
      assert.equal(r.signal, null, `round ${round}: killed by a signal\n${r.stderr.slice(-4000)}`);
      assert.equal(r.code, 0, `round ${round}: exit code\n${r.stderr.slice(-4000)}`);
      assert.ok(!sanitizerReport(r.stderr), `round ${round}: sanitizer report:\n${r.stderr.slice(-8000)}`);
    }
  });
});
