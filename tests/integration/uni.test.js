// The unidirectional transports (issue 13 §2): clients without an SDK. curl (spawned, `curl -N`) on
// uni_http_stream (POST a ConnectRequest, newline-delimited pushes back) and uni_sse (cf_connect in the
// URL, or a POST body; `data:` events), and a bare-socket WebSocket on uni_websocket (the first message
// is the ConnectRequest). Each shows the connect push {"connect":…} first, publications from the
// server API as {"channel":…,"pub":…}, pings as {}, recovery through `subs` (offset, epoch) after a
// reconnect (uni_websocket's connect may also come in cf_connect), Disconnect 3001 at shutdown, a
// refused connect as Centrifugo gives it (a disconnect push; 400 for a malformed request),
// 405 for a wrong method, 413 for an oversized body, 1009 for an oversized connect message and 404 for
// a transport that is off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { api } from './lib/http.js';
import { hsToken, now } from './lib/jwt.js';
import { openWsRaw, closeAllWsRaw } from './lib/wsraw.js';

const SECRET = 'uni-test-secret';
const WAIT_MS = 10000;

let srv;
let off;
const curls = new Set();

before(async () => {
  srv = await startServer({
    uni_http_stream: true, uni_sse: true, uni_websocket: true, api_key: API_KEY, token_hmac_secret_key: SECRET,
    history_size: 10, history_ttl: '300s', force_recovery: true, ping_interval: '2s', pong_timeout: '1s',
    uni_http_stream_max_request_body_size: 1024, uni_sse_max_request_body_size: 1024,
    uni_websocket_message_size_limit: 1024, prometheus: true,
    http_stream: true, // the /emulation endpoint exists: uni sessions must still not be reachable through it
  });
  off = await startServer({ client_insecure: true, api_key: API_KEY });
});
after(async () => {
  for (const c of curls) c.kill('SIGKILL');
  closeAllWsRaw();
  await stopAll();
});

const token = (claims) => hsToken({ sub: 'u1', ...claims }, SECRET);

/**
 * Spawns `curl -sN ARGS` and splits what it prints into messages: lines of JSON (uni_http_stream) or
 * the JSON of `data:` lines (uni_sse). next() resolves with the next message, null once curl ended;
 * `done` resolves with curl's exit code.
 */
function curl(args, { sse = false } = {}) {
  const child = spawn('curl', ['-sN', '--max-time', '30', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  curls.add(child);
  const c = { child, text: '', messages: [], read: 0, ended: false, waiters: [] };
  const wake = () => { const w = c.waiters; c.waiters = []; for (const f of w) f(); };
  let parsed = 0;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    c.text += d;
    let i;
    while ((i = c.text.indexOf('\n', parsed)) >= 0) {
      const line = c.text.slice(parsed, i);
      parsed = i + 1;
      if (sse) {
        if (line.startsWith('data: ')) c.messages.push(JSON.parse(line.slice(6)));
      } else if (line.trim() !== '') {
        c.messages.push(JSON.parse(line));
      }
    }
    wake();
  });
  c.done = new Promise((resolve) => child.on('exit', (code) => { c.ended = true; curls.delete(child); wake(); resolve(code); }));
  c.next = (ms = WAIT_MS) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message within ${ms} ms; got: ${c.text.slice(-300)}`)), ms);
    const check = () => {
      if (c.read < c.messages.length) { clearTimeout(timer); resolve(c.messages[c.read++]); }
      else if (c.ended) { clearTimeout(timer); resolve(null); }
      else c.waiters.push(check);
    };
    check();
  });
  /** The next message that is not a ping ({}). */
  c.nextPush = async (ms = WAIT_MS) => {
    for (;;) {
      const m = await c.next(ms);
      if (m === null || Object.keys(m).length > 0) return m;
    }
  };
  c.kill = () => { child.kill('SIGKILL'); return c.done; };
  return c;
}

const uniStream = (body) =>
  curl(['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(body),
    `${srv.base}/connection/uni_http_stream`]);

const uniSse = (body) =>
  curl([`${srv.base}/connection/uni_sse?cf_connect=${encodeURIComponent(JSON.stringify(body))}`], { sse: true });

/** The HTTP status curl sees for ARGS (the body discarded). */
async function statusOf(args) {
  const child = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', ...args],
    { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  await new Promise((resolve) => child.on('exit', resolve));
  return Number(out);
}

const publish = async (channel, data) => {
  const res = await api(srv.base, 'publish', { channel, data }, { key: API_KEY });
  assert.equal(res.status, 200, res.body);
  return res.json.result;
};

describe('uni_http_stream', () => {
  test('connect push first, then publications of the token channels and {} pings', async () => {
    const c = uniStream({ token: token({ channels: ['uni-a'] }), name: 'curl' });
    const first = await c.next();
    assert.ok(first.connect, JSON.stringify(first));
    assert.match(first.connect.client, /^[0-9a-f-]{36}$/);
    assert.equal(first.connect.ping, 2);
    assert.equal(first.connect.pong, undefined, 'uni clients are never asked to pong');
    assert.ok(first.connect.subs && first.connect.subs['uni-a'], JSON.stringify(first));
    await publish('uni-a', { n: 1 });
    const pub = await c.nextPush();
    assert.equal(pub.channel, 'uni-a');
    assert.deepEqual(pub.pub.data, { n: 1 });
    assert.ok(pub.pub.offset > 0);
    // pings keep coming without pongs: past ping_interval + pong_timeout the stream is still alive
    let pings = 0;
    while (pings < 2) {
      const m = await c.next(5000);
      assert.ok(m !== null, 'the stream ended: a uni client must never be closed for not ponging');
      if (Object.keys(m).length === 0) pings++;
    }
    await publish('uni-a', { n: 2 });
    assert.deepEqual((await c.nextPush()).pub.data, { n: 2 });
    await c.kill();
  });

  test('recovery after a reconnect with subs (offset, epoch)', async () => {
    const tok = token({ channels: ['uni-rec'] });
    const a = uniStream({ token: tok });
    const hello = await a.next();
    const sub = hello.connect.subs['uni-rec'];
    assert.ok(sub.recoverable && sub.epoch, JSON.stringify(sub));
    await publish('uni-rec', { n: 1 });
    const p1 = await a.nextPush();
    await a.kill();
    await publish('uni-rec', { n: 2 });
    await publish('uni-rec', { n: 3 });
    const b = uniStream({ token: tok, subs: { 'uni-rec': { recover: true, offset: p1.pub.offset, epoch: sub.epoch } } });
    const again = (await b.next()).connect.subs['uni-rec'];
    assert.equal(again.recovered, true, JSON.stringify(again));
    assert.deepEqual(again.publications.map((p) => p.data), [{ n: 2 }, { n: 3 }]);
    await publish('uni-rec', { n: 4 });
    assert.deepEqual((await b.nextPush()).pub.data, { n: 4 });
    await b.kill();
  });

  test('the connect push names the session, which /emulation cannot feed commands to', async () => {
    const c = uniStream({ token: token({ channels: ['uni-own'] }) });
    const hello = (await c.next()).connect;
    assert.match(hello.session, /^[0-9a-f-]{36}$/, 'session, as Centrifugo gives uni clients');
    assert.equal(hello.node, undefined, 'node only for emulation transports');
    const info = await api(srv.base, 'info', {}, { key: API_KEY });
    const node = info.json.result.nodes[0].uid;
    const data = JSON.stringify({ id: 2, subscribe: { channel: 'uni-other' } });
    const res = await fetch(`${srv.base}/emulation`, { method: 'POST', body: JSON.stringify({ session: hello.session, node, data }) });
    assert.equal(res.status, 204); // as for any session unknown here
    await publish('uni-other', { injected: true });
    await publish('uni-own', { n: 1 });
    const next = await c.nextPush();
    assert.deepEqual(next, { channel: 'uni-own', pub: { data: { n: 1 }, offset: next.pub.offset } },
      'nothing from the subscribe sent through /emulation');
    await c.kill();
  });

  test('a refused connect: the stream is a disconnect push and ends', async () => {
    const bad = uniStream({ token: 'not.a.token' });
    assert.deepEqual(await bad.next(), { disconnect: { code: 3500, reason: 'invalid token' } });
    assert.equal(await bad.next(), null);
    assert.equal(await bad.done, 0);
    const expired = uniStream({ token: token({ exp: now() - 60 }) });
    const d = await expired.next();
    assert.equal(d.disconnect.code, 3005, JSON.stringify(d));
    assert.equal(await expired.next(), null);
  });

  test('malformed body 400, GET 405, oversized body 413', async () => {
    const url = `${srv.base}/connection/uni_http_stream`;
    assert.equal(await statusOf(['-X', 'POST', '--data-binary', '{"token":', url]), 400);
    assert.equal(await statusOf(['-X', 'POST', '--data-binary', '[1]', url]), 400);
    assert.equal(await statusOf([url]), 405);
    const big = JSON.stringify({ token: token({}), data: { pad: 'x'.repeat(2000) } });
    assert.equal(await statusOf(['-X', 'POST', '--data-binary', big, url]), 413);
  });
});

describe('uni_sse', () => {
  test('GET with cf_connect: connect event, publications, pings', async () => {
    const c = uniSse({ token: token({ channels: ['uni-sse'] }) });
    const first = await c.next();
    assert.ok(first.connect.subs['uni-sse'], JSON.stringify(first));
    await publish('uni-sse', { s: 1 });
    const pub = await c.nextPush();
    assert.equal(pub.channel, 'uni-sse');
    assert.deepEqual(pub.pub.data, { s: 1 });
    let m;
    do m = await c.next(5000); while (m && Object.keys(m).length > 0);
    assert.deepEqual(m, {}, 'a ping event');
    await c.kill();
  });

  test('POST body, recovery with subs, and a text/event-stream response', async () => {
    const tok = token({ channels: ['uni-sse-rec'] });
    const a = uniSse({ token: tok });
    const sub = (await a.next()).connect.subs['uni-sse-rec'];
    await publish('uni-sse-rec', { n: 1 });
    const p1 = await a.nextPush();
    await a.kill();
    await publish('uni-sse-rec', { n: 2 });
    const body = JSON.stringify({ token: tok, subs: { 'uni-sse-rec': { recover: true, offset: p1.pub.offset, epoch: sub.epoch } } });
    const b = curl(['-X', 'POST', '--data-binary', body, `${srv.base}/connection/uni_sse`], { sse: true });
    const again = (await b.next()).connect.subs['uni-sse-rec'];
    assert.equal(again.recovered, true);
    assert.deepEqual(again.publications.map((p) => p.data), [{ n: 2 }]);
    await b.kill();
    const res = await fetch(`${srv.base}/connection/uni_sse?cf_connect=${encodeURIComponent(JSON.stringify({ token: tok }))}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    await res.body.cancel();
  });

  test('a malformed cf_connect is 400, an invalid token a disconnect event, an oversized POST 413', async () => {
    const url = `${srv.base}/connection/uni_sse`;
    assert.equal(await statusOf([`${url}?cf_connect=${encodeURIComponent('{"token"')}`]), 400);
    const bad = uniSse({ token: 'x.y.z' });
    assert.equal((await bad.next()).disconnect.code, 3500);
    assert.equal(await bad.next(), null);
    assert.equal(await statusOf(['-X', 'POST', '--data-binary', JSON.stringify({ data: 'x'.repeat(2000) }), url]), 413);
    assert.equal(await statusOf(['-X', 'PUT', url]), 405);
  });
});

describe('uni_websocket', () => {
  const open = () => openWsRaw(srv.port, { path: '/connection/uni_websocket' });

  test('the first message connects; publications and pings are text messages; later messages are ignored', async () => {
    const ws = await open();
    ws.send(0x1, JSON.stringify({ token: token({ channels: ['uni-ws'] }) }));
    const first = await ws.nextJSON();
    assert.ok(first.connect.subs['uni-ws'], JSON.stringify(first));
    ws.send(0x1, '{"id":2,"publish":{"channel":"uni-ws","data":{}}}'); // nothing to say: ignored
    await publish('uni-ws', { w: 1 });
    let m = await ws.nextJSON();
    while (Object.keys(m).length === 0) m = await ws.nextJSON();
    assert.deepEqual(m, { channel: 'uni-ws', pub: { data: { w: 1 }, offset: m.pub.offset } });
    do m = await ws.nextJSON(5000); while (Object.keys(m).length > 0);
    assert.deepEqual(m, {});
    ws.destroy();
  });

  test('recovery with subs in the connect message', async () => {
    const tok = token({ channels: ['uni-ws-rec'] });
    const a = await open();
    a.send(0x1, JSON.stringify({ token: tok }));
    const sub = (await a.nextJSON()).connect.subs['uni-ws-rec'];
    a.destroy();
    await publish('uni-ws-rec', { n: 1 });
    await publish('uni-ws-rec', { n: 2 });
    const b = await open();
    b.send(0x1, JSON.stringify({ token: tok, subs: { 'uni-ws-rec': { recover: true, offset: sub.offset ?? 0, epoch: sub.epoch } } }));
    const again = (await b.nextJSON()).connect.subs['uni-ws-rec'];
    assert.equal(again.recovered, true);
    assert.deepEqual(again.publications.map((p) => p.data), [{ n: 1 }, { n: 2 }]);
    b.destroy();
  });

  test('cf_connect in the URL connects without a first message; a malformed one is 400', async () => {
    const cf = encodeURIComponent(JSON.stringify({ token: token({ channels: ['uni-ws-cf'] }) }));
    const ws = await openWsRaw(srv.port, { path: `/connection/uni_websocket?cf_connect=${cf}` });
    assert.ok((await ws.nextJSON()).connect.subs['uni-ws-cf']);
    await publish('uni-ws-cf', { cf: 1 });
    let m = await ws.nextJSON();
    while (Object.keys(m).length === 0) m = await ws.nextJSON();
    assert.deepEqual(m.pub.data, { cf: 1 });
    ws.destroy();
    await assert.rejects(openWsRaw(srv.port, { path: '/connection/uni_websocket?cf_connect=%7B' }), /400/);
  });

  test('an invalid token: a disconnect message, then Close 3500; malformed: 3501; oversized: 1009', async () => {
    const a = await open();
    a.send(0x1, JSON.stringify({ token: 'x.y.z' }));
    assert.deepEqual(await a.nextJSON(), { disconnect: { code: 3500, reason: 'invalid token' } });
    assert.equal((await a.closeFrame()).code, 3500);
    await a.ended;
    const b = await open();
    b.send(0x1, 'not json');
    assert.equal((await b.closeFrame()).code, 3501);
    const c = await open();
    c.send(0x1, JSON.stringify({ data: 'x'.repeat(2000) }));
    assert.equal((await c.closeFrame()).code, 1009);
  });
});

test('shutdown: every uni client gets Disconnect 3001 and the server exits cleanly', async () => {
  const own = await startServer({ uni_http_stream: true, uni_sse: true, uni_websocket: true, client_insecure: true });
  const stream = curl(['-X', 'POST', '--data-binary', '{}', `${own.base}/connection/uni_http_stream`]);
  const sse = curl([`${own.base}/connection/uni_sse`], { sse: true });
  const ws = await openWsRaw(own.port, { path: '/connection/uni_websocket' });
  ws.send(0x1, '{}');
  for (const c of [stream, sse]) assert.ok((await c.next()).connect);
  assert.ok((await ws.nextJSON()).connect);
  const stopped = own.stop();
  for (const c of [stream, sse]) {
    assert.deepEqual(await c.nextPush(), { disconnect: { code: 3001, reason: 'shutdown' } });
    assert.equal(await c.next(), null);
  }
  let m = await ws.nextJSON();
  while (Object.keys(m).length === 0) m = await ws.nextJSON();
  assert.deepEqual(m, { disconnect: { code: 3001, reason: 'shutdown' } });
  assert.equal((await ws.closeFrame()).code, 3001);
  const { code, signal } = await stopped;
  assert.equal(signal, null);
  assert.equal(code, 0);
});

test('uni transports are counted by transport in /metrics', async () => {
  const c = uniStream({ token: token({}) });
  await c.next();
  const text = await (await fetch(`${srv.base}/metrics`)).text();
  assert.match(text, /streamd_connections\{transport="uni_http_stream",protocol="json"\} [1-9]/);
  await c.kill();
});

test('transports that are off (the default) answer 404', async () => {
  assert.equal(await statusOf(['-X', 'POST', '--data-binary', '{}', `${off.base}/connection/uni_http_stream`]), 404);
  assert.equal(await statusOf([`${off.base}/connection/uni_sse?cf_connect=%7B%7D`]), 404);
  await assert.rejects(openWsRaw(off.port, { path: '/connection/uni_websocket' }), /404/);
});
