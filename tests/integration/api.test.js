// Server HTTP API, first part (PROTOCOL.md §7): publish and broadcast with the API key.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { request, postJSON, api } from './lib/http.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';

describe('server API with api_key', () => {
  let srv;
  let sub; // a raw client subscribed to "news", "a" and "b"

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, namespaces: [{ name: 'chat', allow_subscribe_for_client: true }] });
    sub = await connectRaw(srv.base);
    await sub.emulate([
      { subscribe: { channel: 'news' }, id: 2 },
      { subscribe: { channel: 'a' }, id: 3 },
      { subscribe: { channel: 'b' }, id: 4 },
    ]);
    await sub.reply(4);
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  /** The next publication the subscriber gets. */
  async function nextPub() {
    const m = await sub.waitFor((f) => !!(f.push && f.push.pub));
    return m.push;
  }

  it('publish with X-API-Key ⇒ 200 {"result":{}} and the subscriber receives it (no client info)', async () => {
    const res = await api(srv.base, 'publish', { channel: 'news', data: { headline: 'x-api-key' } }, { key: API_KEY });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] || '', /^application\/json/);
    assert.deepEqual(res.json, { result: {} });
    assert.deepEqual(await nextPub(), { channel: 'news', pub: { data: { headline: 'x-api-key' } } });
  });

  it('publish with Authorization: apikey KEY ⇒ 200', async () => {
    for (const scheme of ['apikey', 'ApiKey']) {
      const res = await postJSON(`${srv.base}/api/publish`, { channel: 'news', data: { via: scheme } },
        { Authorization: `${scheme} ${API_KEY}` });
      assert.equal(res.status, 200, scheme);
      assert.deepEqual(JSON.parse(res.body), { result: {} });
      assert.deepEqual((await nextPub()).pub.data, { via: scheme });
    }
  });

  it('publish without a key or with a wrong one ⇒ 401 and nothing is published', async () => {
    const cases = [
      {},
      { 'X-API-Key': 'wrong' },
      { 'X-API-Key': '' },
      { Authorization: 'apikey wrong' },
      { Authorization: `Bearer ${API_KEY}` },
      { Authorization: `apikey${API_KEY}` },
    ];
    for (const headers of cases) {
      const res = await postJSON(`${srv.base}/api/publish`, { channel: 'news', data: { leaked: headers } }, headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
    }
    // The next publication the subscriber sees is this one, none of the refused ones.
    await api(srv.base, 'publish', { channel: 'news', data: { after: 'refused' } }, { key: API_KEY });
    assert.deepEqual((await nextPub()).pub.data, { after: 'refused' });
  });

  it('broadcast ⇒ one response per channel, in order, and every channel gets the data', async () => {
    const res = await api(srv.base, 'broadcast', { channels: ['a', 'b', 'nobody-listens'], data: { all: 1 } }, { key: API_KEY });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { result: { responses: [{ result: {} }, { result: {} }, { result: {} }] } });
    const got = [await nextPub(), await nextPub()];
    assert.deepEqual(got.map((p) => p.channel).sort(), ['a', 'b']);
    for (const p of got) assert.deepEqual(p.pub.data, { all: 1 });
  });

  it('broadcast reports a per-channel error for an unknown namespace', async () => {
    const res = await api(srv.base, 'broadcast', { channels: ['a', 'nope:x'], data: { mixed: true } }, { key: API_KEY });
    assert.equal(res.status, 200);
    const r = res.json.result.responses;
    assert.equal(r.length, 2);
    assert.deepEqual(r[0], { result: {} });
    assert.equal(r[1].error.code, 102);
    assert.deepEqual((await nextPub()).pub.data, { mixed: true });
  });

  it('malformed JSON ⇒ 400', async () => {
    const res = await postJSON(`${srv.base}/api/publish`, '{"channel": "news", "data": ', { 'X-API-Key': API_KEY });
    assert.equal(res.status, 400);
  });

  it('an empty channel ⇒ {"error":{"code":107}}', async () => {
    const res = await api(srv.base, 'publish', { channel: '', data: { x: 1 } }, { key: API_KEY });
    assert.equal(res.status, 200);
    assert.equal(res.json.error.code, 107);
    assert.equal(res.json.error.message, 'bad request');
    assert.equal(res.json.result, undefined);
  });

  it('an unknown namespace ⇒ {"error":{"code":102}}', async () => {
    const res = await api(srv.base, 'publish', { channel: 'nope:x', data: { x: 1 } }, { key: API_KEY });
    assert.equal(res.status, 200);
    assert.equal(res.json.error.code, 102);
    assert.equal(res.json.error.message, 'unknown channel');
  });

  it('broadcast without channels ⇒ {"error":{"code":107}}', async () => {
    const res = await api(srv.base, 'broadcast', { channels: [], data: { x: 1 } }, { key: API_KEY });
    assert.equal(res.status, 200);
    assert.equal(res.json.error.code, 107);
  });

  it('publish into a namespace reaches its subscribers', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'chat:room' }, id: 2 });
    const res = await api(srv.base, 'publish', { channel: 'chat:room', data: { hi: 'ns' } }, { key: API_KEY });
    assert.deepEqual(res.json, { result: {} });
    const m = await s.waitFor((f) => !!f.push);
    assert.deepEqual(m, { push: { channel: 'chat:room', pub: { data: { hi: 'ns' } } } });
    s.close();
  });

  it('publish embeds data as raw JSON: number texts survive, even beyond 64-bit integers', async () => {
    const body = '{"channel":"news","data":{"a":1.50,"huge":123456789012345678901234567890,"e":1E+2}}';
    const res = await postJSON(`${srv.base}/api/publish`, body, { 'X-API-Key': API_KEY });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), { result: {} });
    await nextPub();
    const line = sub.allLines.find((l) => l.includes('"huge"'));
    assert.match(line, /"huge":\s*123456789012345678901234567890\b/, `integer text kept: ${line}`);
    assert.match(line, /"a":\s*1\.50\b/, `number text kept: ${line}`);
    assert.match(line, /"e":\s*1E\+2\b/, `number text kept: ${line}`);
  });

  it('GET on an API method ⇒ 405', async () => {
    const res = await request(`${srv.base}/api/publish`, { method: 'GET', headers: { 'X-API-Key': API_KEY } });
    assert.equal(res.status, 405);
  });
});

describe('server API with api_insecure', () => {
  let srv;

  before(async () => {
    srv = await startServer({ http_stream: true, client_insecure: true, api_insecure: true });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('publish without a key ⇒ 200 and delivered', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'open' }, id: 2 });
    const res = await api(srv.base, 'publish', { channel: 'open', data: { insecure: true } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { result: {} });
    assert.deepEqual((await s.waitFor((f) => !!f.push)).push.pub.data, { insecure: true });
    s.close();
  });
});

describe('server API without api_key and without api_insecure', () => {
  let srv;

  before(async () => {
    srv = await startServer({ http_stream: true, client_insecure: true });
  });

  after(async () => {
    await stopAll();
  });

  it('every request ⇒ 401, even with an empty key', async () => {
    assert.equal((await api(srv.base, 'publish', { channel: 'x', data: 1 })).status, 401);
    assert.equal((await api(srv.base, 'publish', { channel: 'x', data: 1 }, { key: '' })).status, 401);
    assert.equal((await api(srv.base, 'publish', { channel: 'x', data: 1 }, { headers: { Authorization: 'apikey ' } })).status, 401);
  });
});
