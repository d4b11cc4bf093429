// The WebSocket transport (PROTOCOL.md §2.6): the official SDK over WebSocket (the `ws` npm package),
// JSON and protobuf (subprotocol centrifuge-protobuf); connect replies without session/node; 200-byte
// and 60 KB payloads; pings; server disconnects as Close frames (3503, 3001 on SIGTERM); handshake
// errors (bad Origin ⇒ 403, no key ⇒ 400, websocket_disable ⇒ 404); a message over
// websocket_message_size_limit ⇒ Close 1009; http_stream and SSE subscribers see WebSocket publications.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import EventSource from 'eventsource';
import { Centrifuge } from 'centrifuge';
import { Centrifuge as CentrifugePb } from 'centrifuge/build/protobuf';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { api, request, withTimeout } from './lib/http.js';
import { connectRaw, call, closeAllRaw } from './lib/raw.js';
import { once, collectPublications, SDK_TIMEOUT_MS } from './lib/sdk.js';
import { openWsRaw, closePayload, closeAllWsRaw } from './lib/wsraw.js';

let srv;
const clients = [];
const sockets = [];
before(async () => {
  srv = await startServer({ http_stream: true, sse: true, client_insecure: true, api_key: API_KEY,
    ping_interval: '2s', pong_timeout: '1s', prometheus: true, allowed_origins: ['http://good.example'],
    websocket_message_size_limit: 65536, namespaces: [{ name: 'bin', publication_data_format: 'binary' }] });
});
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of sockets) s.terminate();
  closeAllRaw();
  closeAllWsRaw();
  await stopAll();
});

const wsUrl = (s) => `ws://127.0.0.1:${s.port}/connection/websocket`;

function sdk(s, Ctor = Centrifuge, opts = {}) {
  const c = new Ctor(wsUrl(s), { websocket: WebSocket, timeout: SDK_TIMEOUT_MS, ...opts });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

function sdkSse() {
  const c = new Centrifuge([{ transport: 'sse', endpoint: `${srv.base}/connection/sse` }], {
    eventsource: EventSource, emulationEndpoint: `${srv.base}/emulation`, timeout: SDK_TIMEOUT_MS,
  });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

async function connected(c) {
  const p = once(c, 'connected');
  c.connect();
  return p;
}

async function subscribed(c, channel) {
  const sub = c.newSubscription(channel);
  collectPublications(sub);
  const p = once(sub, 'subscribed');
  sub.subscribe();
  await p;
  return sub;
}

/** A raw ws client: resolves with { ws, messages (parsed JSON), next(), closed (promise of {code, reason}) }. */
function openRawWs(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols, opts);
    sockets.push(ws);
    const r = { ws, messages: [], waiters: [] };
    r.closed = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.on('message', (data) => {
      for (const line of data.toString().split('\n')) if (line) r.messages.push(JSON.parse(line));
      const w = r.waiters; r.waiters = []; for (const f of w) f();
    });
    let read = 0;
    r.next = () => withTimeout(new Promise((res) => {
      const check = () => (read < r.messages.length ? res(r.messages[read++]) : r.waiters.push(check));
      check();
    }), 10000, 'a WebSocket message');
    ws.on('open', () => resolve(r));
    ws.on('unexpected-response', (req, res) => reject(Object.assign(new Error('handshake refused'), { status: res.statusCode })));
    ws.on('error', reject);
  });
}

describe('raw WebSocket', () => {
  test('connect reply has no session/node; commands and replies are JSON text messages', async () => {
    const r = await openRawWs(wsUrl(srv));
    r.ws.send(JSON.stringify({ id: 1, connect: { name: 'raw' } }));
    const reply = await r.next();
    assert.equal(reply.id, 1);
    assert.match(reply.connect.client, /^[0-9a-f-]{36}$/);
    assert.equal(reply.connect.session, undefined);
    assert.equal(reply.connect.node, undefined);
    r.ws.send(JSON.stringify({ id: 2, subscribe: { channel: 'raw-ws' } }));
    assert.deepEqual(await r.next(), { id: 2, subscribe: {} });
    r.ws.close();
    assert.equal((await r.closed).code, 1005);
  });

  test('handshake errors: bad Origin ⇒ 403, no key ⇒ 400, websocket_disable ⇒ 404', async () => {
    await assert.rejects(openRawWs(wsUrl(srv), { origin: 'http://evil.example' }), { status: 403 });
    const ok = await openRawWs(wsUrl(srv), { origin: 'http://good.example' });
    ok.ws.close();
    const res = await request(`${srv.base}/connection/websocket`, { headers: { Upgrade: 'websocket',
      Connection: 'Upgrade', 'Sec-WebSocket-Version': '13' } });
    assert.equal(res.status, 400);
    const off = await startServer({ websocket_disable: true });
    await assert.rejects(openRawWs(wsUrl(off)), { status: 404 });
    await off.stop();
  });

  test('fragmented messages are joined; a ping is answered with a pong carrying its payload', async () => {
    const r = await openRawWs(wsUrl(srv));
    const text = JSON.stringify({ id: 1, connect: { name: 'fragments' } });
    r.ws.send(text.slice(0, 5), { fin: false });
    r.ws.send(text.slice(5, 9), { fin: false });
    r.ws.send(text.slice(9), { fin: true });
    assert.equal((await r.next()).id, 1);
    const pong = new Promise((res) => r.ws.once('pong', (data) => res(data.toString())));
    r.ws.ping('hello');
    assert.equal(await withTimeout(pong, 5000, 'pong'), 'hello');
    r.ws.close(1000);
    assert.equal((await r.closed).code, 1000);
  });

  test('a message over websocket_message_size_limit ⇒ Close 1009', async () => {
    const r = await openRawWs(wsUrl(srv));
    r.ws.send(JSON.stringify({ id: 1, connect: {} }));
    await r.next();
    r.ws.send('x'.repeat(70000));
    assert.equal((await r.closed).code, 1009);
  });

  test('an unmasked client frame ⇒ Close 1002', async () => {
    const r = await openRawWs(wsUrl(srv));
    r.ws._socket.write(Buffer.from([0x81, 0x02, 0x7b, 0x7d]));
    assert.equal((await r.closed).code, 1002);
  });
});

describe('the SDK over WebSocket', () => {
  test('connects, subscribes, publishes both ways, 200-byte and 60 KB payloads, stays up through pings', async () => {
    const a = sdk(srv);
    const ctx = await connected(a);
    assert.equal(ctx.transport, 'websocket');
    const sub = await subscribed(a, 'ws-news');
    await sub.publish({ hello: 'over websocket' });
    assert.deepEqual((await sub.nextPub()).data, { hello: 'over websocket' });
    const small = 'a'.repeat(200);
    const big = 'b'.repeat(60 * 1024);
    await api(srv.base, 'publish', { channel: 'ws-news', data: { small } }, { key: API_KEY });
    assert.deepEqual((await sub.nextPub()).data, { small });
    await sub.publish({ big });
    assert.deepEqual((await sub.nextPub()).data, { big });
    await api(srv.base, 'publish', { channel: 'ws-news', data: { big } }, { key: API_KEY });
    assert.deepEqual((await sub.nextPub()).data, { big });
    let lost = null;
    a.on('connecting', (c) => { lost = c; });
    a.on('disconnected', (c) => { lost = c; });
    await new Promise((r) => setTimeout(r, 4500)); // two ping intervals
    assert.equal(lost, null);
    await api(srv.base, 'publish', { channel: 'ws-news', data: { after: 'pings' } }, { key: API_KEY });
    assert.deepEqual((await sub.nextPub()).data, { after: 'pings' });
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    assert.match(metrics, /streamd_connections\{transport="websocket",protocol="json"\} [1-9]/);
  });

  test('http_stream and SSE subscribers get publications from a WebSocket client', async () => {
    const hs = await connectRaw(srv.base);
    await call(hs, { id: 2, subscribe: { channel: 'mixed' } });
    const a = sdk(srv);
    await connected(a);
    const sub = await subscribed(a, 'mixed');
    await sub.publish({ from: 'websocket' });
    const got = await hs.waitFor((m) => m.push && m.push.pub);
    assert.deepEqual(got.push.pub.data, { from: 'websocket' });
    assert.deepEqual((await sub.nextPub()).data, { from: 'websocket' });
    const sse = sdkSse();
    await connected(sse);
    const sseSub = await subscribed(sse, 'mixed');
    await sub.publish({ to: 'sse' });
    assert.deepEqual((await sseSub.nextPub()).data, { to: 'sse' });
  });

  test('API disconnect ⇒ Close frame 3503 ⇒ SDK disconnected with code 3503', async () => {
    const a = sdk(srv);
    const { client } = await connected(a);
    const disconnected = once(a, 'disconnected');
    await api(srv.base, 'disconnect', { user: '', client }, { key: API_KEY });
    assert.equal((await disconnected).code, 3503);
  });

  test('the protobuf SDK over WebSocket (subprotocol centrifuge-protobuf)', async () => {
    const a = sdk(srv, CentrifugePb);
    const ctx = await connected(a);
    assert.equal(ctx.transport, 'websocket');
    const sub = await subscribed(a, 'bin:ws-pb'); /* its data is not JSON: a "binary" namespace */
    await sub.publish(new TextEncoder().encode('binary \x00 data'));
    assert.equal(new TextDecoder().decode((await sub.nextPub()).data), 'binary \x00 data');
    const big = new Uint8Array(60 * 1024).fill(7);
    await sub.publish(big);
    assert.equal((await sub.nextPub()).data.length, big.length);
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    assert.match(metrics, /streamd_connections\{transport="websocket",protocol="protobuf"\} [1-9]/);
  });
});

describe('shutdown', () => {
  test('SIGTERM ⇒ Close 3001 to WebSocket clients, exit code 0', async () => {
    const own = await startServer({ client_insecure: true });
    const a = sdk(own);
    await connected(a);
    const r = await openRawWs(wsUrl(own));
    r.ws.send(JSON.stringify({ id: 1, connect: {} }));
    await r.next();
    const connecting = once(a, 'connecting');
    const stopped = own.stop('SIGTERM');
    assert.equal((await connecting).code, 3001);
    assert.deepEqual(await r.closed, { code: 3001, reason: 'shutdown' });
    a.disconnect();
    const res = await stopped;
    assert.equal(res.code, 0, res.stderr);
  });
});

// RFC 6455 on a bare socket: what the server answers to frames a library client would never send.
describe('hostile WebSocket input', () => {
  const connect = '{"id":1,"connect":{}}';
  const utf8 = (b) => new TextDecoder('utf-8', { fatal: true }).decode(b);

  test('reserved opcodes 3-7 and 11-15 ⇒ Close 1002, never taken as data', async () => {
    for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
      const c = await openWsRaw(srv.port);
      c.send(op, op < 8 ? connect : '');
      const f = await c.nextFrame();
      assert.ok(f, `opcode ${op}: a frame before the end`);
      assert.equal(f.opcode, 0x8, `opcode ${op} is answered with a Close, not ${f.payload.toString()}`);
      assert.equal(f.payload.readUInt16BE(0), 1002, `opcode ${op}`);
      await c.ended;
    }
  });

  test('a Close with a reserved or invalid code ⇒ Close 1002; valid codes are echoed', async () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
      const c = await openWsRaw(srv.port);
      c.send(0x8, closePayload(code));
      assert.equal((await c.closeFrame()).code, 1002, `code ${code} is not echoed`);
      await c.ended;
    }
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]) {
      const c = await openWsRaw(srv.port);
      c.send(0x8, closePayload(code, 'bye'));
      assert.equal((await c.closeFrame()).code, code, `code ${code} is echoed`);
      await c.ended;
    }
    const one = await openWsRaw(srv.port);
    one.send(0x8, Buffer.from([0x03])); // a one-byte Close payload
    assert.equal((await one.closeFrame()).code, 1002);
  });

  test('text that is not UTF-8 ⇒ Close 1007, also across fragments and in a Close reason', async () => {
    const bad = await openWsRaw(srv.port);
    bad.send(0x1, Buffer.from([0x7b, 0xff, 0x7d]));
    assert.equal((await bad.closeFrame()).code, 1007);

    const surrogate = await openWsRaw(srv.port);
    surrogate.send(0x1, Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22])); // U+D800 encoded
    assert.equal((await surrogate.closeFrame()).code, 1007);

    // a two-byte sequence split over two fragments is fine
    const split = await openWsRaw(srv.port);
    const text = Buffer.from('{"id":1,"connect":{"name":"é"}}');
    const cut = text.indexOf(0xc3) + 1;
    split.send(0x1, text.subarray(0, cut), { fin: false });
    split.send(0x0, text.subarray(cut));
    assert.equal((await split.nextJSON()).id, 1);

    // a message whose last fragment ends inside a sequence is not
    const truncated = await openWsRaw(srv.port);
    truncated.send(0x1, Buffer.from('{"id":1,'), { fin: false });
    truncated.send(0x0, Buffer.from([0xe2, 0x82]));
    assert.equal((await truncated.closeFrame()).code, 1007);

    const reason = await openWsRaw(srv.port);
    reason.send(0x8, closePayload(1000, Buffer.from([0xc3, 0x28])));
    assert.equal((await reason.closeFrame()).code, 1007);
  });

  test('a long Close reason is cut to 123 bytes at a code point boundary', async () => {
    const c = await openWsRaw(srv.port);
    c.send(0x1, connect);
    const { client } = (await c.nextJSON()).connect;
    const long = 'é'.repeat(100); // 200 bytes; byte 123 is the first half of an é
    await api(srv.base, 'disconnect', { user: '', client, disconnect: { code: 4000, reason: long } }, { key: API_KEY });
    const close = await c.closeFrame();
    assert.equal(close.code, 4000);
    assert.ok(close.reason.length <= 123, `reason of ${close.reason.length} bytes`);
    assert.equal(utf8(close.reason), 'é'.repeat(61), 'the reason is whole code points');
  });
});
