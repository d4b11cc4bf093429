// The SDK's browser bundles (npm centrifuge 5.8.0, dist/centrifuge.js and dist/centrifuge.protobuf.js)
// in headless Chromium, on a page served from another origin than streamd's, checked through what the
// page shows: WebSocket; the fallback to http_stream when WebSocket is disabled, with its cross-origin
// emulation POSTs and their CORS preflight; the protobuf bundle; SSE with the browser's own EventSource
// through several pings; a page of a disallowed origin refused with nothing it sent executed; and the
// reconnect and resubscribe after streamd restarts.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, API_KEY } from '../integration/lib/server.js';
import { api, freePort, withTimeout } from '../integration/lib/http.js';
import { connectRaw, call, closeAllRaw } from '../integration/lib/raw.js';
import { chromiumSkip, launchBrowser, startSite, openPage, startRecorder, WAIT_MS } from './lib/browser.js';
import { ws, fallback, publish, roundTrip } from './lib/checks.js';

let browser, site, evil;
before(async () => {
  if (chromiumSkip) return;
  browser = await launchBrowser();
  site = await startSite();
  evil = await startSite();
});
// What a test opened (pages, relays), closed after it whether it passed or not, before its servers stop.
let opened = [];
const keep = (x) => (opened.push(x), x);
afterEach(async () => {
  for (const x of opened.reverse()) await x.close();
  opened = [];
  closeAllRaw();
  await stopAll(); // and each streamd must have exited cleanly
});
after(async () => {
  if (browser) await browser.close();
  if (site) await site.close();
  if (evil) await evil.close();
  await stopAll();
});

/** A streamd for pages of the test site: every transport on, development mode, an API key. */
function serve(extra = {}) {
  return startServer({ http_stream: true, sse: true, client_insecure: true, api_key: API_KEY,
    allowed_origins: [site.origin], ...extra });
}

describe('Chromium, page of another origin', { skip: chromiumSkip }, () => {
  test('WebSocket: connect, subscribe, publications from the API and from the page', async () => {
    const srv = await serve();
    const p = keep(await openPage(browser, site, { endpoints: ws(srv.base) }));
    await roundTrip(p, srv, 'websocket');
  });

  test('WebSocket disabled: falls back to http_stream; emulation POSTs after one CORS preflight, on a kept connection', async () => {
    const srv = await serve({ websocket_disable: true });
    const relay = keep(await startRecorder(srv.port));
    const base = `http://127.0.0.1:${relay.port}`;
    const p = keep(await openPage(browser, site, { endpoints: fallback(base), options: { emulationEndpoint: `${base}/emulation` } }));
    await roundTrip(p, srv, 'http_stream');
    assert.ok((await p.events()).some((e) => e.startsWith('error transport')), 'the WebSocket failed first');
    const seen = relay.requests;
    const show = JSON.stringify(seen);
    assert.ok(seen.some((r) => r.method === 'GET' && r.path === '/connection/websocket'), show);
    assert.ok(seen.some((r) => r.method === 'POST' && r.path === '/connection/http_stream'), show);
    const pre = seen.findIndex((r) => r.method === 'OPTIONS' && r.path === '/emulation');
    assert.ok(pre >= 0, `no preflight: ${show}`);
    const posts = seen.filter((r) => r.method === 'POST' && r.path === '/emulation');
    assert.ok(posts.length >= 2, `subscribe and publish went by /emulation: ${show}`);
    // One preflight per endpoint (the stream's POST needs one too), then cached for its max-age.
    assert.deepEqual(seen.filter((r) => r.method === 'OPTIONS').map((r) => r.path).sort(),
      ['/connection/http_stream', '/emulation'], show);
    // The preflights' connections carried the POSTs after them: they were not closed.
    seen.forEach((r, i) => {
      if (r.method === 'OPTIONS') assert.ok(seen.slice(i + 1).some((q) => q.conn === r.conn && q.method === 'POST'), show);
    });
  });

  for (const [transport, endpoints] of [
    ['websocket', (base) => ws(base)],
    ['http_stream', (base) => [{ transport: 'http_stream', endpoint: `${base}/connection/http_stream` }]],
  ]) {
    test(`protobuf bundle over ${transport}`, async () => {
      const srv = await serve();
      const p = keep(await openPage(browser, site, { bundle: 'protobuf', endpoints: endpoints(srv.base),
        options: { emulationEndpoint: `${srv.base}/emulation` } }));
      await roundTrip(p, srv, transport);
    });
  }

  test("SSE with the browser's EventSource stays connected through pings, answering them", async () => {
    const srv = await serve({ ping_interval: '1s', pong_timeout: '500ms' });
    const p = keep(await openPage(browser, site, {
      endpoints: [{ transport: 'sse', endpoint: `${srv.base}/connection/sse` }],
      options: { emulationEndpoint: `${srv.base}/emulation` },
    }));
    // What the browser's EventSource received, from Chromium's network log.
    const cdp = await p.context.newCDPSession(p.page);
    let pings = 0;
    let pingsSeen;
    const threePings = new Promise((resolve) => { pingsSeen = resolve; });
    cdp.on('Network.eventSourceMessageReceived', (m) => {
      if (m.data === '{}' && ++pings === 3) pingsSeen();
    });
    await cdp.send('Network.enable');
    await roundTrip(p, srv, 'sse');
    await withTimeout(threePings, WAIT_MS, `three pings over SSE (got ${pings})`);
    // Every ping was answered (a missed pong would have ended the session within 500 ms of its ping):
    // still the one connection, and it still delivers.
    await publish(srv, 'news', { after: 'pings' });
    await p.waitMessage('{"after":"pings"}');
    const events = await p.events();
    assert.equal(events.filter((e) => e.startsWith('connected')).length, 1, events.join('\n'));
    assert.equal(await p.text('#state'), 'connected');
  });

  test('a page of a disallowed origin: refused, and nothing it sends is executed', async () => {
    const srv = await serve();
    const p = keep(await openPage(browser, evil, { endpoints: fallback(srv.base), options: { emulationEndpoint: `${srv.base}/emulation` } }));
    // Both transports were tried and refused (403 for the stream, the handshake for the WebSocket).
    await p.waitLine('events', /^error transport/);
    await p.waitFor('two transport errors', () =>
      [...document.querySelectorAll('#events li')].filter((li) => li.textContent.startsWith('error transport')).length >= 2);
    assert.notEqual(await p.text('#state'), 'connected');
    assert.ok(!(await p.events()).some((e) => e.startsWith('connected')));
    // A request the page may send without a preflight (a "simple" POST that the page cannot read the
    // answer of), with the session of someone else's stream: refused before it runs.
    const victim = await connectRaw(srv.base);
    await call(victim, { subscribe: { channel: 'news' }, id: 2 });
    const forged = JSON.stringify({ session: victim.session, node: victim.node,
      data: JSON.stringify({ publish: { channel: 'news', data: { from: 'evil' } }, id: 3 }) });
    await p.page.evaluate(([url, body]) => fetch(url, { method: 'POST', mode: 'no-cors', body,
      headers: { 'Content-Type': 'text/plain' } }).then(() => 'sent'), [`${srv.base}/emulation`, forged]);
    await publish(srv, 'news', { from: 'api' });
    // The next frame of the victim's stream is the API's publication: the forged publish never ran.
    assert.deepEqual((await victim.nextJSON()).push.pub.data, { from: 'api' });
    // The only connection streamd ever had is the victim's.
    const info = await api(srv.base, 'info', {}, { key: API_KEY });
    assert.equal(info.json.result.nodes[0].num_clients, 1, info.body);
  });

  test('streamd restarts: the page reconnects and resubscribes by itself', async () => {
    const port = await freePort();
    let srv = await serve({ port });
    const p = keep(await openPage(browser, site, { endpoints: fallback(srv.base),
      options: { emulationEndpoint: `${srv.base}/emulation`, minReconnectDelay: 100, maxReconnectDelay: 1000 } }));
    await roundTrip(p, srv, 'websocket');
    const r = await srv.stop();
    assert.equal(r.code, 0);
    await p.waitLine('events', /^connecting 3001 /);
    srv = await serve({ port });
    await p.waitFor('a second connect', () =>
      [...document.querySelectorAll('#events li')].filter((li) => li.textContent === 'connected websocket').length === 2);
    await p.waitFor('a second subscribe', () =>
      [...document.querySelectorAll('#events li')].filter((li) => li.textContent === 'subscribed').length === 2);
    await publish(srv, 'news', { after: 'restart' });
    await p.waitMessage('{"after":"restart"}');
  });
});
