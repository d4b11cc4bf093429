// The complete server API (PROTOCOL.md §7), method by method, as a backend calls it: results, errors,
// the 401 paths, the transport error mode, batch and the legacy POST /api form. Effects on connected
// clients are observed on their raw streams.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { connectRaw, call, closeAllRaw } from './lib/raw.js';
import { api, postJSON } from './lib/http.js';
import { hsToken, now } from './lib/jwt.js';

let srv;
const call_ = (method, params, opts = {}) => api(srv.base, method, params, { key: API_KEY, ...opts });

before(async () => {
  srv = await startServer({
    http_stream: true, client_insecure: true, api_key: API_KEY,
    namespaces: [{ name: 'hh', history_size: 5, history_ttl: '60s', presence: true, join_leave: true }],
  });
});
after(async () => {
  closeAllRaw();
  await stopAll();
});

/** The next push on raw stream S that has FIELD. */
async function nextPush(s, field) {
  for (;;) {
    const f = await s.nextJSON();
    if (f.push && f.push[field]) return f.push;
  }
}

describe('authentication', () => {
  const methods = ['publish', 'broadcast', 'subscribe', 'unsubscribe', 'disconnect', 'refresh', 'presence',
    'presence_stats', 'history', 'history_remove', 'channels', 'info', 'batch'];
  for (const m of methods) {
    test(`${m} without a key or with a wrong key ⇒ 401`, async () => {
      assert.equal((await api(srv.base, m, {}, { key: null })).status, 401);
      assert.equal((await api(srv.base, m, {}, { key: 'wrong' })).status, 401);
    });
  }
  test('Authorization: apikey KEY works, the scheme case-insensitively', async () => {
    const r = await postJSON(srv.base + '/api/info', {}, { Authorization: `APIKEY ${API_KEY}` });
    assert.equal(r.status, 200);
  });
});

describe('methods', () => {
  test('publish into a history channel returns offset and epoch; history and history_remove', async () => {
    const a = await call_('publish', { channel: 'hh:1', data: { n: 1 } });
    const b = await call_('publish', { channel: 'hh:1', data: { n: 2 }, tags: { k: 'v' } });
    assert.equal(a.json.result.offset, 1);
    assert.equal(b.json.result.offset, 2);
    assert.equal(a.json.result.epoch, b.json.result.epoch);
    const h = await call_('history', { channel: 'hh:1', limit: -1 });
    assert.deepEqual(h.json.result.publications.map((p) => [p.offset, p.data.n]), [[1, 1], [2, 2]]);
    assert.deepEqual(h.json.result.publications[1].tags, { k: 'v' });
    assert.equal(h.json.result.epoch, a.json.result.epoch);
    const since = await call_('history', { channel: 'hh:1', limit: 10, since: { offset: 1, epoch: a.json.result.epoch } });
    assert.deepEqual(since.json.result.publications.map((p) => p.offset), [2]);
    const wrong = await call_('history', { channel: 'hh:1', limit: 10, since: { offset: 1, epoch: 'xxxxxxxx' } });
    assert.equal(wrong.json.error.code, 112);
    assert.deepEqual((await call_('history_remove', { channel: 'hh:1' })).json, { result: {} });
    const empty = await call_('history', { channel: 'hh:1', limit: -1 });
    assert.deepEqual(empty.json.result.publications, []);
    assert.equal(empty.json.result.offset, 2);
    assert.equal((await call_('history', { channel: 'plain', limit: 1 })).json.error.code, 108);
  });

  test('publish: b64data, skip_history and errors', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { id: 2, subscribe: { channel: 'b64' } });
    await call_('publish', { channel: 'b64', b64data: Buffer.from('{"x":1}').toString('base64') });
    assert.deepEqual((await nextPush(s, 'pub')).pub.data, { x: 1 });
    const skipped = await call_('publish', { channel: 'hh:2', data: 1, skip_history: true });
    assert.deepEqual(skipped.json, { result: {} });
    assert.equal((await call_('publish', { channel: '', data: 1 })).json.error.code, 107);
    assert.equal((await call_('publish', { channel: 'nope:x', data: 1 })).json.error.code, 102);
    assert.equal((await call_('publish', { channel: 'x' })).json.error.code, 107);
  });

  test('subscribe and unsubscribe a live connection (subscribe push, unsubscribe push 2000)', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual((await call_('subscribe', { client: s.client, channel: 'hh:srv' })).json, { result: {} });
    const sub = await nextPush(s, 'subscribe');
    assert.equal(sub.channel, 'hh:srv');
    await call_('publish', { channel: 'hh:srv', data: { via: 'api' } });
    assert.deepEqual((await nextPush(s, 'pub')).pub.data, { via: 'api' });
    assert.deepEqual((await call_('unsubscribe', { client: s.client, channel: 'hh:srv' })).json, { result: {} });
    const u = await nextPush(s, 'unsubscribe');
    assert.deepEqual(u, { channel: 'hh:srv', unsubscribe: { code: 2000, reason: 'server unsubscribe' } });
    assert.equal((await call_('subscribe', { channel: 'hh:srv' })).json.error.code, 107); // nobody addressed
  });

  test('presence and presence_stats', async () => {
    const s1 = await connectRaw(srv.base);
    const s2 = await connectRaw(srv.base);
    await call(s1, { id: 2, subscribe: { channel: 'hh:room' } });
    await call(s2, { id: 2, subscribe: { channel: 'hh:room' } });
    const p = await call_('presence', { channel: 'hh:room' });
    assert.deepEqual(Object.keys(p.json.result.presence).sort(), [s1.client, s2.client].sort());
    assert.deepEqual(p.json.result.presence[s1.client], { user: '', client: s1.client });
    const st = await call_('presence_stats', { channel: 'hh:room' });
    assert.deepEqual(st.json.result, { num_clients: 2, num_users: 1 });
    assert.equal((await call_('presence', { channel: 'plain' })).json.error.code, 108);
  });

  test('disconnect: the default 3503, a custom code and reason, the whitelist', async () => {
    const s1 = await connectRaw(srv.base);
    await call_('disconnect', { client: s1.client });
    assert.deepEqual((await nextPush(s1, 'disconnect')).disconnect, { code: 3503, reason: 'force disconnect' });
    await s1.expectEnd();
    const s2 = await connectRaw(srv.base);
    await call_('disconnect', { session: s2.session, disconnect: { code: 4100, reason: 'bye now' } });
    assert.deepEqual((await nextPush(s2, 'disconnect')).disconnect, { code: 4100, reason: 'bye now' });
    const s3 = await connectRaw(srv.base);
    await call_('disconnect', { client: s3.client, whitelist: [s3.client] });
    assert.deepEqual((await call(s3, { id: 2, subscribe: { channel: 'still-here' } })).subscribe, {});
    assert.equal((await call_('disconnect', { client: s3.client, disconnect: { code: 200 } })).json.error.code, 107);
  });

  test('refresh with expired: true closes the connection with 3005', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual((await call_('refresh', { client: s.client, expired: true })).json, { result: {} });
    assert.equal((await nextPush(s, 'disconnect')).disconnect.code, 3005);
  });

  test('channels (with a pattern) and info', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { id: 2, subscribe: { channel: 'list-a' } });
    await call(s, { id: 3, subscribe: { channel: 'list-b' } });
    await call(s, { id: 4, subscribe: { channel: 'other' } });
    const all = await call_('channels', { pattern: 'list-*' });
    assert.deepEqual(all.json.result.channels, { 'list-a': { num_clients: 1 }, 'list-b': { num_clients: 1 } });
    const info = await call_('info', {});
    const node = info.json.result.nodes[0];
    assert.equal(node.uid, s.node);
    assert.ok(node.num_clients >= 1 && node.num_subs >= 3 && node.num_channels >= 3);
    assert.equal(node.num_users, 0, 'every connection here is anonymous: no user id at all');
    assert.equal(typeof node.version, 'string');
    assert.equal(typeof node.uptime, 'number');
  });

  test('info num_users counts distinct user ids; anonymous connections count as clients only', async () => {
    const secret = 'api-methods-users';
    const users = await startServer({
      http_stream: true, token_hmac_secret_key: secret, allow_anonymous_connect_without_token: true,
      api_key: API_KEY,
    });
    const token = (sub) => hsToken({ sub, exp: now() + 600 }, secret);
    for (const connect of [{}, {}, { token: token('u1') }, { token: token('u1') }, { token: token('u2') }])
      await connectRaw(users.base, { connect });
    const info = await api(users.base, 'info', {}, { key: API_KEY });
    const node = info.json.result.nodes[0];
    assert.equal(node.num_clients, 5);
    assert.equal(node.num_users, 2, 'u1 and u2; the two anonymous connections are no user');
  });

  test('batch runs commands in order and reports each', async () => {
    const r = await call_('batch', { commands: [
      { publish: { channel: 'hh:batch', data: 1 } },
      { publish: { channel: 'nope:x', data: 2 } },
      { no_such_method: {} },
      { history: { channel: 'hh:batch', limit: -1 } },
    ] });
    assert.equal(r.status, 200);
    const [a, b, c, d] = r.json.replies;
    assert.equal(a.publish.offset, 1);
    assert.equal(b.error.code, 102);
    assert.equal(c.error.code, 104);
    assert.equal(d.history.publications.length, 1);
  });

  test('the legacy POST /api with method and params', async () => {
    const r = await postJSON(srv.base + '/api', { method: 'publish', params: { channel: 'legacy', data: { l: 1 } } },
      { Authorization: `apikey ${API_KEY}` });
    assert.deepEqual(JSON.parse(r.body), { result: {} });
    const bad = await postJSON(srv.base + '/api', { method: 'nothing', params: {} }, { 'X-API-Key': API_KEY });
    assert.equal(JSON.parse(bad.body).error.code, 104);
  });

  test('X-Centrifugo-Error-Mode: transport turns errors into HTTP statuses', async () => {
    const h = { 'X-Centrifugo-Error-Mode': 'transport' };
    const unknown = await call_('publish', { channel: 'nope:x', data: 1 }, { headers: h });
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.json, { code: 102, message: 'unknown channel' });
    assert.equal((await call_('publish', { channel: '', data: 1 }, { headers: h })).status, 400);
    assert.equal((await call_('history', { channel: 'hh:1', limit: 1, since: { offset: 1, epoch: 'zz' } }, { headers: h })).status, 416);
    assert.equal((await call_('publish', { channel: 'ok', data: 1 }, { headers: h })).status, 200);
  });

  test('an unknown method path ⇒ 404; malformed JSON ⇒ 400; GET ⇒ 405', async () => {
    assert.equal((await call_('nothing_here', {})).status, 404);
    const bad = await postJSON(srv.base + '/api/publish', '{not json', { 'X-API-Key': API_KEY });
    assert.equal(bad.status, 400);
    const get = await fetch(srv.base + '/api/info', { headers: { 'X-API-Key': API_KEY } });
    assert.equal(get.status, 405);
  });
});
