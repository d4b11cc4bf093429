// CORS preflight and the Origin rule (PROTOCOL.md §2.5, INTERFACE.md allowed_origins): a browser
// request from an origin matching no allowed_origins pattern gets 403 and nothing it asked for runs;
// requests without Origin and same-origin requests pass.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, stopAll, BASE_CONFIG } from './lib/server.js';
import { request } from './lib/http.js';
import { connectRaw, openStream, closeAllRaw, call } from './lib/raw.js';
import { newClient, connectedClient, subscribe, closeAllClients, once } from './lib/sdk.js';

const GOOD = 'http://localhost:3000';
const EVIL = 'http://evil.example';

function preflight(url, origin, requestHeaders = 'content-type') {
  const headers = { Origin: origin, 'Access-Control-Request-Method': 'POST' };
  if (requestHeaders !== null) headers['Access-Control-Request-Headers'] = requestHeaders;
  return request(url, { method: 'OPTIONS', headers });
}

describe('allowed_origins = [ "http://localhost:*" ]', () => {
  let srv;
  let emu;
  let streamUrl;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, allowed_origins: ['http://localhost:*'] });
    emu = srv.base + '/emulation';
    streamUrl = srv.base + '/connection/http_stream';
  });

  after(async () => {
    closeAllClients();
    closeAllRaw();
    await stopAll();
  });

  for (const which of ['emulation', 'stream']) {
    it(`OPTIONS preflight on the ${which} endpoint from an allowed origin ⇒ 204 with the CORS headers`, async () => {
      const url = which === 'emulation' ? emu : streamUrl;
      const res = await preflight(url, GOOD, 'content-type, x-custom');
      assert.equal(res.status, 204);
      assert.equal(res.headers['access-control-allow-origin'], GOOD);
      assert.equal(res.headers['access-control-allow-headers'], 'content-type, x-custom');
      assert.equal(res.headers['access-control-allow-methods'], 'POST, OPTIONS');
      assert.equal(res.headers['access-control-max-age'], '300');
      assert.equal(res.body, '');
    });
  }

  it('a preflight keeps the connection: the emulation POST after it reuses the same socket', async () => {
    // What a browser does for every cross-origin emulation request: OPTIONS, then the POST, on one
    // keep-alive connection (over TLS a new connection per preflight costs a handshake).
    const s = await connectRaw(srv.base, { headers: { Origin: GOOD } });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const send = (method, headers, body) => new Promise((resolve, reject) => {
      const req = http.request(emu, { method, headers, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, reused: req.reusedSocket }));
      });
      req.on('error', reject);
      req.end(body);
    });
    try {
      const pre = await send('OPTIONS', { Origin: GOOD, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers['access-control-allow-origin'], GOOD);
      assert.notEqual(pre.headers.connection, 'close', 'the preflight answer closes the connection');
      const body = JSON.stringify({ session: s.session, node: s.node, data: JSON.stringify({ subscribe: { channel: 'keep' }, id: 2 }) });
      const post = await send('POST', { Origin: GOOD, 'Content-Type': 'application/json' }, body);
      assert.equal(post.status, 204);
      assert.equal(post.reused, true, 'the POST went over a new connection');
      assert.deepEqual(await s.nextJSON(), { id: 2, subscribe: {} });
    } finally {
      agent.destroy();
      s.close();
    }
  });

  it('OPTIONS preflight from an origin matching no pattern ⇒ 403 without CORS headers', async () => {
    for (const url of [emu, streamUrl]) {
      const res = await preflight(url, EVIL);
      assert.equal(res.status, 403, url);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
    }
  });

  it('the glob matches any port of localhost but not other hosts or schemes', async () => {
    for (const origin of ['http://localhost:8080', 'http://localhost:1']) {
      assert.equal((await preflight(emu, origin)).status, 204, origin);
    }
    for (const origin of ['https://localhost:3000', 'http://localhost.evil.example:3000', 'http://127.0.0.1:3000', 'null']) {
      assert.equal((await preflight(emu, origin)).status, 403, origin);
    }
  });

  it('a stream POST from an allowed origin streams and carries Access-Control-Allow-Origin', async () => {
    const s = await connectRaw(srv.base, { headers: { Origin: GOOD } });
    assert.equal(s.headers['access-control-allow-origin'], GOOD);
    s.close();
  });

  it('a stream POST from an origin matching no pattern ⇒ 403 and no session', async () => {
    const s = await openStream(streamUrl, { body: JSON.stringify({ connect: { name: 'evil' }, id: 1 }), headers: { Origin: EVIL } });
    assert.equal(s.status, 403);
    assert.equal(s.headers['access-control-allow-origin'], undefined);
    await s.endPromise;
    assert.ok(!s.allLines.concat(s.partial).some((l) => l.includes('"connect"')), 'no connect reply');
    s.close();
  });

  it('an emulation request from an origin matching no pattern ⇒ 403 and its publish is not delivered', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'cors' }, id: 2 });
    const evil = await s.emulate([{ publish: { channel: 'cors', data: { from: 'evil' } }, id: 3 }], { headers: { Origin: EVIL } });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
    const good = await s.emulate([{ publish: { channel: 'cors', data: { from: 'good' } }, id: 4 }], { headers: { Origin: GOOD } });
    assert.equal(good.status, 204);
    assert.equal(good.headers['access-control-allow-origin'], GOOD);
    // The first frames after the allowed request are its reply and publication, nothing from id 3.
    const frames = [await s.nextJSON(), await s.nextJSON()];
    assert.deepEqual(frames.find((f) => f.id), { id: 4, publish: {} }, JSON.stringify(frames));
    assert.deepEqual(frames.find((f) => f.push)?.push.pub.data, { from: 'good' });
    s.close();
  });

  it('requests without Origin pass (not a browser)', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual(await call(s, { subscribe: { channel: 'no-origin' }, id: 2 }), { id: 2, subscribe: {}, skipped: [] });
    s.close();
  });

  it('a same-origin request (Origin = http:// + Host) passes although no pattern matches it', async () => {
    const self = `http://127.0.0.1:${srv.port}`;
    const s = await connectRaw(srv.base, { headers: { Origin: self } });
    const res = await s.emulate([{ subscribe: { channel: 'same-origin' }, id: 2 }], { headers: { Origin: self } });
    assert.equal(res.status, 204);
    assert.deepEqual(await s.nextJSON(), { id: 2, subscribe: {} });
    s.close();
  });

  it('the SDK from an allowed origin works; from a refused one it never connects', async () => {
    const good = await connectedClient(srv.base, { headers: { Origin: GOOD } });
    const sub = await subscribe(good, 'sdk-cors');
    await sub.publish({ ok: 1 });
    assert.deepEqual((await sub.nextPub()).data, { ok: 1 });

    const evil = newClient(srv.base, { headers: { Origin: EVIL } });
    let connected = false;
    evil.on('connected', () => {
      connected = true;
    });
    const err = once(evil, 'error');
    evil.connect();
    const e = await err;
    assert.equal(e.type, 'transport');
    assert.equal(connected, false);
    assert.equal(evil.state, 'connecting');
    assert.ok(evil.streamStatuses.includes(403), `stream statuses ${JSON.stringify(evil.streamStatuses)}`);
    evil.disconnect();
    good.disconnect();
  });
});

describe('allowed_origins not set', () => {
  let srv;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('any foreign Origin ⇒ 403 on both endpoints and on the preflight', async () => {
    const body = JSON.stringify({ connect: { name: 'x' }, id: 1 });
    const st = await openStream(srv.base + '/connection/http_stream', { body, headers: { Origin: GOOD } });
    assert.equal(st.status, 403);
    st.close();
    const s = await connectRaw(srv.base);
    const res = await s.emulate([{ subscribe: { channel: 'x' }, id: 2 }], { headers: { Origin: GOOD } });
    assert.equal(res.status, 403);
    assert.equal((await preflight(srv.base + '/emulation', GOOD)).status, 403);
    // The refused subscribe did not run.
    assert.deepEqual(await call(s, { subscribe: { channel: 'x' }, id: 3 }), { id: 3, subscribe: {}, skipped: [] });
    s.close();
  });

  it('same-origin and Origin-less requests pass', async () => {
    const self = `http://127.0.0.1:${srv.port}`;
    const s = await connectRaw(srv.base, { headers: { Origin: self } });
    assert.equal((await s.emulate([{ subscribe: { channel: 'y' }, id: 2 }], { headers: { Origin: self } })).status, 204);
    assert.deepEqual(await s.nextJSON(), { id: 2, subscribe: {} });
    assert.equal((await preflight(srv.base + '/emulation', self)).status, 204);
    s.close();
  });
});

describe('allowed_origins = [ "*" ]', () => {
  let srv;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, allowed_origins: ['*'] });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('every origin passes and is echoed', async () => {
    const s = await connectRaw(srv.base, { headers: { Origin: EVIL } });
    assert.equal(s.headers['access-control-allow-origin'], EVIL);
    const res = await s.emulate([{ subscribe: { channel: 'star' }, id: 2 }], { headers: { Origin: 'https://anything.example:444' } });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], 'https://anything.example:444');
    assert.deepEqual(await s.nextJSON(), { id: 2, subscribe: {} });
    s.close();
  });
});
