// The SSE transport (PROTOCOL.md §2.4): the official SDK over `sse` with the `eventsource` npm polyfill,
// and the raw event stream: the comment line ":\n" first, one `data: <json>` event per reply, emulation for commands,
// the connect command in `cf_connect` (GET) or the body (POST), 400 without it, 405/404 as for other
// endpoints, and SSE and http_stream subscribers sharing a channel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import EventSource from 'eventsource';
import { Centrifuge } from 'centrifuge';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { api } from './lib/http.js';
import { connectRaw, call, closeAllRaw } from './lib/raw.js';
import { once, collectPublications, SDK_TIMEOUT_MS } from './lib/sdk.js';

let srv;
const clients = [];
before(async () => {
  srv = await startServer({ http_stream: true, sse: true, client_insecure: true, api_key: API_KEY,
    ping_interval: '2s', pong_timeout: '1s', prometheus: true });
});
after(async () => {
  for (const c of clients) c.disconnect();
  closeAllRaw();
  await stopAll();
});

/** A raw SSE stream: resolves with { status, headers, events (parsed JSON), next(), raw text, close() }. */
async function openSse(url, init = {}) {
  const ac = new AbortController();
  const res = await fetch(url, { ...init, signal: ac.signal });
  const s = { status: res.status, headers: res.headers, events: [], text: '', close: () => ac.abort() };
  if (!res.ok) return s;
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let waiters = [];
  let read = 0;
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        s.text += dec.decode(value, { stream: true });
        let i;
        while ((i = s.text.indexOf('\n\n', s.parsedTo ?? 0)) >= 0) {
          const block = s.text.slice(s.parsedTo ?? 0, i);
          s.parsedTo = i + 2;
          for (const line of block.split('\n')) if (line.startsWith('data: ')) s.events.push(JSON.parse(line.slice(6)));
        }
        const w = waiters; waiters = []; for (const f of w) f();
      }
    } catch { /* aborted */ }
    s.ended = true;
    const w = waiters; waiters = []; for (const f of w) f();
  })();
  s.next = (ms = 10000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no SSE event within ${ms} ms: ${s.text.slice(-300)}`)), ms);
    const check = () => {
      if (read < s.events.length) { clearTimeout(timer); resolve(s.events[read++]); }
      else if (s.ended) { clearTimeout(timer); reject(new Error('stream ended')); }
      else waiters.push(check);
    };
    check();
  });
  return s;
}

const connectParam = (cmd) => encodeURIComponent(JSON.stringify(cmd));

describe('raw SSE', () => {
  test('GET with cf_connect: headers, ":\\n" first, the connect reply as an event, commands through emulation', async () => {
    const s = await openSse(`${srv.base}/connection/sse?cf_connect=${connectParam({ connect: { name: 'js' }, id: 1 })}`);
    assert.equal(s.status, 200);
    assert.equal(s.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(s.headers.get('x-accel-buffering'), 'no');
    const reply = await s.next();
    assert.ok(s.text.startsWith(':\ndata: '), JSON.stringify(s.text.slice(0, 20)));
    assert.equal(reply.id, 1);
    const { session, node, client } = reply.connect;
    assert.match(client, /^[0-9a-f-]{36}$/);
    const emulate = (cmd) => fetch(`${srv.base}/emulation`, { method: 'POST',
      body: JSON.stringify({ session, node, data: JSON.stringify(cmd) }) });
    assert.equal((await emulate({ id: 2, subscribe: { channel: 'sse-news' } })).status, 204);
    assert.deepEqual(await s.next(), { id: 2, subscribe: {} });
    await fetch(`${srv.base}/api/publish`, { method: 'POST', headers: { 'X-API-Key': API_KEY },
      body: '{"channel":"sse-news","data":{"text":"hi\\nthere","n":1.50}}' });
    assert.deepEqual(await s.next(), { push: { channel: 'sse-news', pub: { data: { text: 'hi\nthere', n: 1.5 } } } });
    assert.ok(s.text.includes('"n":1.50'), 'raw data verbatim inside the event');
    assert.deepEqual(await s.next(5000), {}); // a ping
    assert.equal((await emulate({})).status, 204); // the pong
    s.close();
  });

  test('POST with the connect command as body works too', async () => {
    const s = await openSse(`${srv.base}/connection/sse`, { method: 'POST', body: JSON.stringify({ connect: {}, id: 1 }) });
    assert.equal(s.status, 200);
    assert.equal((await s.next()).id, 1);
    s.close();
  });

  test('errors: no cf_connect ⇒ 400, PUT ⇒ 405, sse = false ⇒ 404, a bad command ⇒ Disconnect 3501 event', async () => {
    assert.equal((await fetch(`${srv.base}/connection/sse`)).status, 400);
    assert.equal((await fetch(`${srv.base}/connection/sse`, { method: 'PUT', body: 'x' })).status, 405);
    const off = await startServer({ http_stream: true });
    assert.equal((await fetch(`${off.base}/connection/sse?cf_connect=x`)).status, 404);
    await off.stop();
    const s = await openSse(`${srv.base}/connection/sse?cf_connect=${encodeURIComponent('{"subscribe":{}}')}`);
    assert.deepEqual(await s.next(), { push: { disconnect: { code: 3501, reason: 'bad request' } } });
  });

  test('SSE and http_stream subscribers share a channel; metrics count SSE connections', async () => {
    const sse = await openSse(`${srv.base}/connection/sse?cf_connect=${connectParam({ connect: {}, id: 1 })}`);
    const { session, node } = (await sse.next()).connect;
    await fetch(`${srv.base}/emulation`, { method: 'POST',
      body: JSON.stringify({ session, node, data: JSON.stringify({ id: 2, subscribe: { channel: 'shared' } }) }) });
    await sse.next();
    const hs = await connectRaw(srv.base);
    await call(hs, { id: 2, subscribe: { channel: 'shared' } });
    await call(hs, { id: 3, publish: { channel: 'shared', data: { from: 'http_stream' } } });
    assert.deepEqual((await sse.next()).push.pub.data, { from: 'http_stream' });
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    assert.match(metrics, /streamd_connections\{transport="sse",protocol="json"\} [1-9]/);
    sse.close();
  });
});

describe('the SDK over SSE (eventsource polyfill)', () => {
  test('connects, subscribes, publishes, receives, and stays connected through pings', async () => {
    const mk = () => {
      const c = new Centrifuge([{ transport: 'sse', endpoint: `${srv.base}/connection/sse` }], {
        eventsource: EventSource, emulationEndpoint: `${srv.base}/emulation`, timeout: SDK_TIMEOUT_MS,
      });
      clients.push(c);
      return c;
    };
    const a = mk();
    const connected = once(a, 'connected');
    a.connect();
    const ctx = await connected;
    assert.equal(ctx.transport, 'sse');
    const sub = a.newSubscription('sdk-sse');
    collectPublications(sub);
    const subscribed = once(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
    await sub.publish({ hello: 'over sse' });
    assert.deepEqual((await sub.nextPub()).data, { hello: 'over sse' });
    let lost = null;
    a.on('connecting', (c) => { lost = c; });
    a.on('disconnected', (c) => { lost = c; });
    await new Promise((r) => setTimeout(r, 4500)); // two ping intervals
    assert.equal(lost, null);
    await api(srv.base, 'publish', { channel: 'sdk-sse', data: { after: 'pings' } }, { key: API_KEY });
    assert.deepEqual((await sub.nextPub()).data, { after: 'pings' });
  });
});

// A new user's setup: the default ping_interval (25 s) and the SDK's default 5 s connect timeout. The
// connect reply is the stream's first event: a parser that mis-reads the preamble beside it (eventsource
// 2.x with a "\r\n" preamble in the same chunk) only sees that event when the first ping arrives, after
// the SDK gave up. Every conforming SSE parser must get it at once.
describe('the SDK over SSE at the default ping interval', () => {
  test('connects within 3 s (the connect reply is dispatched at once, not at the first ping)', async () => {
    const srv25 = await startServer({ sse: true, client_insecure: true, api_key: API_KEY });
    const c = new Centrifuge([{ transport: 'sse', endpoint: `${srv25.base}/connection/sse` }], {
      eventsource: EventSource, emulationEndpoint: `${srv25.base}/emulation`,
    });
    clients.push(c);
    const t0 = Date.now();
    const connected = once(c, 'connected', 3000);
    c.connect();
    const ctx = await connected;
    assert.equal(ctx.transport, 'sse');
    assert.ok(Date.now() - t0 < 3000);
    c.disconnect();
  });
});
