// DNS rebinding (README "Host allow-list", streamd.conf(5) allowed_hosts): a page on evil.example whose
// name is re-pointed at 127.0.0.1 reaches streamd with `Host: evil.example` (and meets the same-origin
// rule Origin == "http://" + Host). Every endpoint refuses a Host that allowed_hosts does not list with
// 421 Misdirected Request before anything runs; the default list is the listen address, localhost and
// the loopback addresses, with or without a port.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { request } from './lib/http.js';

const PUBLISH = JSON.stringify({ channel: 'hosts', data: { x: 1 } });

/** One request of each endpoint family with HOST as the Host header; resolves with the statuses. */
async function everyEndpoint(base, host, extraHeaders = {}) {
  const h = { Host: host, ...extraHeaders };
  const json = { 'Content-Type': 'application/json' };
  const out = {};
  out['/api/publish'] = (await request(`${base}/api/publish`, {
    method: 'POST', headers: { ...h, ...json, 'X-API-Key': API_KEY }, body: PUBLISH,
  })).status;
  out['/connection/http_stream'] = (await request(`${base}/connection/http_stream`, {
    method: 'POST', headers: { ...h, ...json }, body: '', timeoutMs: 5000,
  })).status;
  out['/emulation'] = (await request(`${base}/emulation`, {
    method: 'POST', headers: { ...h, ...json }, body: JSON.stringify({ session: 'x', node: 'y', data: '{}' }),
  })).status;
  out['/health'] = (await request(`${base}/health`, { headers: h })).status;
  return out;
}

describe('allowed_hosts at its default', () => {
  let srv;
  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, health: true });
  });
  after(async () => {
    await stopAll();
  });

  for (const host of ['evil.example', 'evil.example:PORT', '127.0.0.1.evil.example', 'localhost.evil.example:PORT', '10.1.2.3']) {
    it(`Host: ${host} ⇒ 421 on every endpoint`, async () => {
      const statuses = await everyEndpoint(srv.base, host.replace('PORT', srv.port));
      for (const [path, status] of Object.entries(statuses)) assert.equal(status, 421, `${path}: ${status}`);
    });
  }

  it('a rebinding page (Origin == "http://" + Host) is refused too', async () => {
    const statuses = await everyEndpoint(srv.base, `evil.example:${srv.port}`, { Origin: `http://evil.example:${srv.port}` });
    for (const [path, status] of Object.entries(statuses)) assert.equal(status, 421, `${path}: ${status}`);
  });

  for (const host of ['127.0.0.1:PORT', '127.0.0.1', 'localhost:PORT', 'LOCALHOST', '[::1]:PORT', '[::1]']) {
    it(`Host: ${host} ⇒ served`, async () => {
      const statuses = await everyEndpoint(srv.base, host.replace('PORT', srv.port));
      assert.equal(statuses['/api/publish'], 200);
      assert.equal(statuses['/connection/http_stream'], 200);
      assert.equal(statuses['/emulation'], 404); // no such session: the handler ran
      assert.equal(statuses['/health'], 200);
    });
  }
});

describe('allowed_hosts = [ "streams.example.com", "*.cdn.example" ]', () => {
  let srv;
  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, health: true, allowed_hosts: ['streams.example.com', '*.cdn.example'] });
  });
  after(async () => {
    await stopAll();
  });

  it('the listed names pass, with or without a port', async () => {
    for (const host of ['streams.example.com', 'streams.example.com:443', 'Edge1.CDN.example']) {
      const statuses = await everyEndpoint(srv.base, host);
      assert.equal(statuses['/api/publish'], 200, host);
      assert.equal(statuses['/health'], 200, host);
    }
  });

  it('anything else, localhost included, gets 421 with a text body', async () => {
    for (const host of ['evil.example', `127.0.0.1:${srv.port}`, 'cdn.example', 'streams.example.com.evil']) {
      const statuses = await everyEndpoint(srv.base, host);
      for (const [path, status] of Object.entries(statuses)) assert.equal(status, 421, `${host} ${path}`);
    }
    const r = await request(`${srv.base}/health`, { headers: { Host: 'evil.example' } });
    assert.match(r.body, /host not allowed/);
  });
});

describe('allowed_hosts = [ "*" ]', () => {
  it('turns the check off', async () => {
    const srv = await startServer({ ...BASE_CONFIG, health: true, allowed_hosts: ['*'] });
    const statuses = await everyEndpoint(srv.base, 'anything.example');
    assert.equal(statuses['/api/publish'], 200);
    assert.equal(statuses['/health'], 200);
    await stopAll();
  });
});

describe('a wildcard listen address with allowed_hosts = []', () => {
  it('serves localhost only and says so at start', async () => {
    const srv = await startServer({ ...BASE_CONFIG, address: '0.0.0.0', health: true });
    assert.match(srv.stderr, /address 0\.0\.0\.0 with allowed_hosts = \[\]: only requests for localhost/);
    const base = `http://127.0.0.1:${srv.port}`;
    assert.equal((await request(`${base}/health`)).status, 200);
    assert.equal((await request(`${base}/health`, { headers: { Host: `0.0.0.0:${srv.port}` } })).status, 421);
    await stopAll();
  });
});

// The server API is for backends, which send no Origin. A browser page elsewhere that posts to it
// (a CSRF against api_insecure, or a page guessing the key) carries its Origin: refused with 403,
// like the client endpoints, unless allowed_origins lists it or it is the server's own origin.
describe('Origin on the server API', () => {
  it('a foreign Origin gets 403 even with the key; none, the same origin or an allowed one pass', async () => {
    const srv = await startServer({ ...BASE_CONFIG, api_insecure: true, allowed_origins: ['http://localhost:3000'] });
    const post = (headers) => request(`${srv.base}/api/publish`, {
      method: 'POST', headers: { 'Content-Type': 'text/plain', 'X-API-Key': API_KEY, ...headers }, body: PUBLISH,
    });
    assert.equal((await post({ Origin: 'http://evil.example' })).status, 403);
    assert.equal((await post({ Origin: 'null' })).status, 403);
    assert.equal((await post({})).status, 200);
    assert.equal((await post({ Origin: `http://127.0.0.1:${srv.port}` })).status, 200);
    assert.equal((await post({ Origin: 'http://localhost:3000' })).status, 200);
    await stopAll();
  });
});
