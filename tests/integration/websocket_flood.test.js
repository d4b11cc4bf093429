// Fairness of the WebSocket loop (one thread for every WebSocket): a client that floods tiny frames
// (empty Pings, 6 bytes each) as fast as it can must not starve the other WebSocket clients. While the
// flood runs, an SDK client keeps its connection through several ping/pong rounds (no 3012) and gets
// every publication within a few seconds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { api, withTimeout } from './lib/http.js';
import { once, collectPublications, SDK_TIMEOUT_MS } from './lib/sdk.js';
import { openWsRaw, clientFrame, closeAllWsRaw } from './lib/wsraw.js';

let srv;
const clients = [];
before(async () => {
  srv = await startServer({ client_insecure: true, api_key: API_KEY, ping_interval: '2s', pong_timeout: '1s' });
});
after(async () => {
  for (const c of clients) c.disconnect();
  closeAllWsRaw();
  await stopAll();
});

describe('WebSocket flood', () => {
  test('a client flooding 6-byte frames does not starve another WebSocket client', { timeout: 60000 }, async () => {
    const victim = new Centrifuge(`ws://127.0.0.1:${srv.port}/connection/websocket`,
      { websocket: WebSocket, timeout: SDK_TIMEOUT_MS });
    victim.on('error', () => {});
    clients.push(victim);
    const lost = [];
    victim.on('disconnected', (ctx) => lost.push(ctx));
    victim.on('connecting', (ctx) => lost.push(ctx));
    const connected = once(victim, 'connected');
    victim.connect();
    await connected;
    lost.length = 0; // the first 'connecting' is the initial connect
    const sub = victim.newSubscription('calm');
    collectPublications(sub);
    const subscribed = once(sub, 'subscribed');
    sub.subscribe();
    await subscribed;

    const flooder = await openWsRaw(srv.port);
    flooder.send(0x1, '{"id":1,"connect":{}}');
    await flooder.nextJSON();
    flooder.socket.removeAllListeners('data');
    flooder.socket.on('data', () => {}); // reads (and drops) the pongs as fast as they come
    const chunk = Buffer.concat(Array.from({ length: 4096 }, () => clientFrame(0x9)));
    assert.equal(chunk.length, 4096 * 6);
    let flooding = true;
    let sent = 0;
    const flood = (async () => {
      while (flooding && !flooder.socket.destroyed) {
        sent += chunk.length;
        if (!flooder.socket.write(chunk)) {
          await new Promise((r) => { flooder.socket.once('drain', r); flooder.socket.once('close', r); });
        }
      }
    })();

    try {
      const started = Date.now();
      let published = 0;
      for (let i = 0; Date.now() - started < 7000; i++) { // 3 ping intervals
        const r = await api(srv.base, 'publish', { channel: 'calm', data: { i } }, { key: API_KEY });
        assert.equal(r.status, 200);
        const pub = await withTimeout(sub.nextPub(), 3000, `publication ${i} during the flood`);
        assert.deepEqual(pub.data, { i });
        published++;
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.deepEqual(lost, [], 'the other client stayed connected (no 3012)');
      assert.ok(published >= 10, `publications during the flood: ${published}`);
      assert.ok(sent > 4 * 1024 * 1024, `the flood was a flood (${sent} bytes)`);
    } finally {
      flooding = false;
      await flood;
    }
  });
});
