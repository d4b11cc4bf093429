// Event proxies to the application backend (issue 13 §1): a real backend (lib/backend.js) authenticates
// connects by cookie, decides subscribes and publishes, replaces publication data and answers RPCs;
// when it fails (500, garbage, too slow) the client gets internal error 100 (temporary), nothing hangs
// and /metrics counts it. Request and answer shapes are Centrifugo's.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Centrifuge as CentrifugePb } from 'centrifuge/build/protobuf';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { startBackend } from './lib/backend.js';
import { openRaw, connectRaw, closeAllRaw, call, openStream } from './lib/raw.js';
import { connectedClient, subscribe, closeAllClients, newClient, once } from './lib/sdk.js';
import { api } from './lib/http.js';
import { openWsRaw, closeAllWsRaw } from './lib/wsraw.js';

const users = { alice: 'alice', bob: 'bob' };

/** The backend's connect script: the cookie `session=NAME` decides. */
function connectScript(req) {
  const cookie = req.headers.cookie || '';
  const name = (/session=([a-z0-9]+)/.exec(cookie) || [])[1];
  if (users[name]) {
    return { result: { user: users[name], data: { welcome: name }, channels: [`personal:${name}`], meta: { plan: 'gold' } } };
  }
  if (name === 'deny') return { error: { code: 1000, message: 'go away' } };
  if (name === 'kick') return { disconnect: { code: 4501, reason: 'banned' } };
  if (name === 'broken') return { status: 500, raw: 'oops' };
  if (name === 'garbage') return { status: 200, raw: '<html>not json' };
  if (name === 'slow') return { status: 200, delayMs: 1500, json: { result: { user: 'late' } } };
  return { disconnect: { code: 4401, reason: 'no session' } };
}

function subscribeScript(req) {
  if (req.body.channel === 'px:secret') return { error: { code: 403, message: 'forbidden' } };
  if (req.body.channel === 'px:kick') return { disconnect: { code: 4502, reason: 'not yours' } };
  return { result: { data: { hello: req.body.user } } };
}

function publishScript(req) {
  if (req.body.channel === 'px:readonly') return { error: { code: 1001, message: 'read only' } };
  if (req.body.data && req.body.data.text) return { result: { data: { text: req.body.data.text.toUpperCase() } } };
  return { result: {} };
}

function rpcScript(req) {
  if (req.body.method === 'slow') return { status: 200, delayMs: 1500, json: { result: {} } };
  if (req.body.method === 'fail') return { status: 502, raw: 'bad gateway' };
  if (req.body.method === 'garbage') return { status: 200, raw: '{"result": ' };
  if (req.body.method === 'refuse') return { error: { code: 1002, message: 'no such thing', temporary: true } };
  return { result: { data: { echo: req.body.data, user: req.body.user, meta: req.body.meta } } };
}

async function metric(base, name, type) {
  const text = await (await fetch(base + '/metrics')).text();
  const m = new RegExp(`^streamd_${name}\\{type="${type}"\\} ([0-9.]+)$`, 'm').exec(text);
  assert.ok(m, `metric ${name}{type="${type}"} in /metrics`);
  return Number(m[1]);
}

const cookie = (name) => ({ Cookie: `session=${name}` });

describe('event proxies', () => {
  let be;
  let srv;

  before(async () => {
    be = await startBackend();
    be.answer('/connect', connectScript);
    be.answer('/subscribe', subscribeScript);
    be.answer('/publish', publishScript);
    be.answer('/rpc', rpcScript);
    srv = await startServer({
      http_stream: true,
      api_key: API_KEY,
      prometheus: true,
      proxy_connect_endpoint: be.url('/connect'),
      proxy_subscribe_endpoint: be.url('/subscribe'),
      proxy_publish_endpoint: be.url('/publish'),
      proxy_rpc_endpoint: be.url('/rpc'),
      proxy_rpc_timeout: '500ms',
      proxy_http_headers: ['Cookie'],
      proxy_static_http_headers: ['X-Streamd-Test: yes'],
      proxy_include_connection_meta: true,
      namespaces: [
        { name: 'personal' },
        { name: 'px', proxy_subscribe: true, proxy_publish: true },
      ],
    });
  });

  after(async () => {
    closeAllClients();
    closeAllRaw();
    closeAllWsRaw();
    await stopAll();
    await be.close();
  });

  it('connects by cookie through http_stream (JSON SDK): the backend names the user and sends data', async () => {
    const before = be.requests('/connect').length;
    const c = newClient(srv.base, { headers: cookie('alice') });
    const serverSub = once(c, 'subscribed');
    const connected = once(c, 'connected');
    c.connect();
    const ctx = await connected;
    assert.deepEqual(ctx.data, { welcome: 'alice' });
    assert.equal((await serverSub).channel, 'personal:alice');
    const req = be.requests('/connect')[before];
    assert.equal(req.method, 'POST');
    assert.equal(req.headers.cookie, 'session=alice');
    assert.equal(req.headers['x-streamd-test'], 'yes');
    assert.match(req.headers['content-type'], /^application\/json/);
    assert.equal(req.body.client, ctx.client);
    assert.equal(req.body.transport, 'http_stream');
    assert.equal(req.body.protocol, 'json');
    assert.equal(req.body.encoding, 'json');
    assert.equal(req.body.name, 'js');
    // The server-side channel from the connect result is live.
    const pub = once(c, 'publication');
    await api(srv.base, 'publish', { channel: 'personal:alice', data: { n: 1 } }, { key: API_KEY });
    assert.deepEqual((await pub).data, { n: 1 });
  });

  it('connects by cookie with the protobuf SDK', async () => {
    const before = be.requests('/connect').length;
    const c = await connectedClient(srv.base, { sdk: CentrifugePb, headers: cookie('bob') });
    const req = be.requests('/connect')[before];
    assert.equal(req.body.protocol, 'protobuf');
    assert.equal(req.body.client, c.connectedCtx.client);
    assert.equal(req.headers.cookie, 'session=bob');
  });

  it('connects by cookie over WebSocket: the upgrade request\'s Cookie is forwarded', async () => {
    const before = be.requests('/connect').length;
    const ws = await openWsRaw(srv.port, { headers: cookie('bob') });
    ws.send(0x1, JSON.stringify({ connect: { name: 'raw-ws' }, id: 1 }));
    const reply = await ws.nextJSON();
    assert.deepEqual(reply.connect.data, { welcome: 'bob' });
    const req = be.requests('/connect')[before];
    assert.equal(req.headers.cookie, 'session=bob');
    assert.equal(req.body.transport, 'websocket');
    ws.destroy();
  });

  it('an emulated client\'s ConnectRequest headers are forwarded when listed in proxy_http_headers', async () => {
    const before = be.requests('/connect').length;
    const s = await connectRaw(srv.base, { connect: { name: 'raw', headers: { Cookie: 'session=alice', 'X-Other': 'no' } } });
    assert.deepEqual(s.connectReply.data, { welcome: 'alice' });
    const req = be.requests('/connect')[before];
    assert.equal(req.headers.cookie, 'session=alice');
    assert.equal(req.headers['x-other'], undefined);
  });

  it('a connect the backend refuses with an error gets that error', async () => {
    const s = await openRaw(srv.base, JSON.stringify({ connect: { name: 'raw' }, id: 1 }), { headers: cookie('deny') });
    assert.deepEqual(await s.nextJSON(), { id: 1, error: { code: 1000, message: 'go away' } });
    s.close();
  });

  it('a connect the backend answers with a disconnect is disconnected with its code and reason', async () => {
    const s = await openRaw(srv.base, JSON.stringify({ connect: { name: 'raw' }, id: 1 }), { headers: cookie('kick') });
    const d = await s.expectDisconnect(4501);
    assert.equal(d.reason, 'banned');
  });

  for (const [what, name] of [['answers 500', 'broken'], ['answers garbage', 'garbage'], ['is too slow', 'slow']]) {
    it(`a backend that ${what} gets the client a temporary internal error, counted in /metrics`, async () => {
      const errors = await metric(srv.base, 'proxy_errors_total', 'connect');
      const s = await openRaw(srv.base, JSON.stringify({ connect: { name: 'raw' }, id: 1 }), { headers: cookie(name) });
      assert.deepEqual(await s.nextJSON(), { id: 1, error: { code: 100, message: 'internal server error', temporary: true } });
      s.close();
      assert.equal(await metric(srv.base, 'proxy_errors_total', 'connect'), errors + 1);
    });
  }

  it('the SDK retries a connect that failed temporarily and connects once the backend recovers', async () => {
    let failures = 1;
    be.answer('/connect', (req) => (failures-- > 0 ? { status: 500, raw: 'not yet' } : connectScript(req)));
    try {
      const c = await connectedClient(srv.base, { headers: cookie('alice') });
      assert.deepEqual(c.connectedCtx.data, { welcome: 'alice' });
    } finally {
      be.answer('/connect', connectScript);
    }
  });

  it('rpc goes to the backend and its data comes back (with the connection meta)', async () => {
    const c = await connectedClient(srv.base, { headers: cookie('alice') });
    const before = be.requests('/rpc').length;
    const res = await c.rpc('echo', { x: 1 });
    assert.deepEqual(res.data, { echo: { x: 1 }, user: 'alice', meta: { plan: 'gold' } });
    const req = be.requests('/rpc')[before];
    assert.equal(req.body.method, 'echo');
    // Keep-alive: ten more calls, one after the other, reuse the connection to the backend.
    const accepted = be.accepted();
    for (let i = 0; i < 10; i++) assert.equal((await c.rpc('echo', i)).data.echo, i);
    assert.ok(be.accepted() - accepted <= 1, `${be.accepted() - accepted} new backend connections for 10 calls`);
    assert.equal(req.body.client, c.connectedCtx.client);
    assert.equal(req.headers.cookie, 'session=alice');
  });

  it('rpc errors: the backend\'s own error, and 100 for a timeout, a 502 and garbage; the client stays connected', async () => {
    const c = await connectedClient(srv.base, { headers: cookie('bob') });
    await assert.rejects(c.rpc('refuse', {}), (e) => e.code === 1002 && e.message === 'no such thing');
    const errors = await metric(srv.base, 'proxy_errors_total', 'rpc');
    for (const method of ['slow', 'fail', 'garbage']) {
      await assert.rejects(c.rpc(method, {}), (e) => e.code === 100, `rpc ${method}`);
    }
    assert.equal(await metric(srv.base, 'proxy_errors_total', 'rpc'), errors + 3);
    assert.equal(c.state, 'connected');
    assert.deepEqual((await c.rpc('echo', 2)).data.echo, 2);
    assert.ok((await metric(srv.base, 'proxy_requests_total', 'rpc')) >= 5);
    assert.ok((await metric(srv.base, 'proxy_request_duration_seconds_sum', 'rpc')) > 0.4);
    assert.equal(await metric(srv.base, 'proxy_in_flight', 'rpc'), 0);
  });

  it('subscribe allowed by the backend, with its data in the subscribed event', async () => {
    const c = await connectedClient(srv.base, { headers: cookie('alice') });
    const sub = await subscribe(c, 'px:room');
    assert.deepEqual(sub.subscribedCtx.data, { hello: 'alice' });
    const req = be.requests('/subscribe').at(-1);
    assert.equal(req.body.channel, 'px:room');
    assert.equal(req.body.user, 'alice');
    assert.deepEqual(req.body.meta, { plan: 'gold' });
  });

  it('subscribe denied by the backend: its error, or its disconnect', async () => {
    const s = await connectRaw(srv.base, { headers: cookie('bob') });
    assert.deepEqual(await call(s, { subscribe: { channel: 'px:secret' }, id: 2 }),
      { id: 2, error: { code: 403, message: 'forbidden' }, skipped: [] });
    await s.emulate([{ subscribe: { channel: 'px:kick' }, id: 3 }]);
    const d = await s.expectDisconnect(4502);
    assert.equal(d.reason, 'not yours');
  });

  it('publish goes through the backend, which replaces the data; a refused publish gets its error', async () => {
    const a = await connectedClient(srv.base, { headers: cookie('alice') });
    const b = await connectedClient(srv.base, { headers: cookie('bob') });
    const subA = await subscribe(a, 'px:shout');
    const subB = await subscribe(b, 'px:shout');
    await subA.publish({ text: 'hi' });
    assert.deepEqual((await subB.nextPub()).data, { text: 'HI' });
    const req = be.requests('/publish').at(-1);
    assert.equal(req.body.channel, 'px:shout');
    assert.equal(req.body.user, 'alice');
    assert.deepEqual(req.body.data, { text: 'hi' });
    const ro = await subscribe(b, 'px:readonly');
    await assert.rejects(ro.publish({ text: 'x' }), (e) => e.code === 1001 && e.message === 'read only');
  });
});

describe('refresh proxy', () => {
  let be;
  let srv;
  before(async () => {
    be = await startBackend();
    // A connect named "raw" expires in a second; others never.
    be.answer('/connect', (req) => ({ result: { user: 'carol',
      ...(req.body.name === 'raw' ? { expire_at: Math.floor(Date.now() / 1000) + 1 } : {}) } }));
    be.answer('/subscribe', () => ({ result: { expire_at: Math.floor(Date.now() / 1000) + 1 } }));
    srv = await startServer({
      http_stream: true,
      ping_interval: '1s',
      pong_timeout: '0s',
      proxy_connect_endpoint: be.url('/connect'),
      proxy_refresh_endpoint: be.url('/refresh'),
      proxy_subscribe_endpoint: be.url('/subscribe'),
      proxy_sub_refresh_endpoint: be.url('/sub_refresh'),
      namespaces: [{ name: 'sr', proxy_subscribe: true, proxy_sub_refresh: true }],
    });
  });
  after(async () => {
    closeAllRaw();
    await stopAll();
    await be.close();
  });

  it('the server asks the refresh proxy once expire_at passed: extended, then expired => 3005', { timeout: 30000 }, async () => {
    let calls = 0;
    be.answer('/refresh', () => (++calls === 1
      ? { result: { expire_at: Math.floor(Date.now() / 1000) + 1 } }
      : { result: { expired: true } }));
    const s = await connectRaw(srv.base);
    // The client has no token to refresh with: the reply says nothing of an expiry.
    assert.equal(s.connectReply.expires, undefined);
    assert.equal(s.connectReply.ttl, undefined);
    const d = await s.expectDisconnect(3005, 15000);
    assert.equal(d.reason, 'connection expired');
    const reqs = be.requests('/refresh');
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].body.user, 'carol');
    assert.equal(reqs[0].body.client, s.client);
    assert.equal(reqs[0].body.transport, 'http_stream');
  });

  it('the server asks the sub_refresh proxy once a proxied subscription\'s expire_at passed: extended, then expired => 2501', { timeout: 30000 }, async () => {
    let calls = 0;
    be.answer('/sub_refresh', () => (++calls === 1
      ? { result: { expire_at: Math.floor(Date.now() / 1000) + 1 } }
      : { result: { expired: true } }));
    const s = await connectRaw(srv.base, { connect: { name: 'raw-sub' } });
    // The subscribe reply says nothing of the expiry: the client has no token to refresh with.
    assert.deepEqual(await call(s, { subscribe: { channel: 'sr:x' }, id: 2 }), { id: 2, subscribe: {}, skipped: [] });
    const push = await s.waitFor((m) => !!(m.push && m.push.unsubscribe), 15000);
    assert.equal(push.push.channel, 'sr:x');
    assert.equal(push.push.unsubscribe.code, 2501);
    const reqs = be.requests('/sub_refresh');
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].body.channel, 'sr:x');
    assert.equal(reqs[0].body.user, 'carol');
    assert.equal(s.ended, false, "the connection stays: only the subscription ended");
  });
});

describe('connect proxy on a unidirectional transport', () => {
  let be;
  let srv;
  before(async () => {
    be = await startBackend();
    be.answer('/connect', connectScript);
    srv = await startServer({ uni_http_stream: true, proxy_connect_endpoint: be.url('/connect'),
      proxy_http_headers: ['Cookie'], namespaces: [{ name: 'personal' }] });
  });
  after(async () => {
    await stopAll();
    await be.close();
  });

  const uni = (name) => openStream(srv.base + '/connection/uni_http_stream',
    { body: JSON.stringify({ name: 'curl' }), headers: { ...cookie(name), 'Content-Type': 'application/json' } });

  it('uni_http_stream: connect by cookie (the connect push carries the backend\'s data); refused => a disconnect push', async () => {
    const s = await uni('alice');
    const push = await s.nextJSON();
    assert.deepEqual(push.connect.data, { welcome: 'alice' });
    const req = be.requests('/connect').at(-1);
    assert.equal(req.body.transport, 'uni_http_stream');
    assert.equal(req.headers.cookie, 'session=alice');
    s.close();
    const kicked = await uni('kick');
    assert.deepEqual(await kicked.nextJSON(), { disconnect: { code: 4501, reason: 'banned' } });
    const broken = await uni('broken');
    assert.equal((await broken.nextJSON()).disconnect.code, 3004);
  });
});

describe('rpc without an RPC proxy', () => {
  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('is 108 not available (Centrifugo installs no RPC handler then)', async () => {
    const srv = await startServer({ http_stream: true, client_insecure: true });
    const s = await connectRaw(srv.base);
    assert.deepEqual(await call(s, { rpc: { method: 'echo', data: {} }, id: 2 }),
      { id: 2, error: { code: 108, message: 'not available' }, skipped: [] });
  });
});
