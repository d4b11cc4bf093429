// Channel options and limits over the raw client protocol (PROTOCOL.md §4.3, §4.7, §5.2, §5.4):
// positioning and recovery flags, the client history command, channel_regex, user-limited channels,
// connection limits (3504), send without a handler (3508), and how a dead client is cleaned up.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { connectRaw, call, closeAllRaw } from './lib/raw.js';
import { api, delay } from './lib/http.js';
import { hsToken, now } from './lib/jwt.js';

const SECRET = 'protocol-features-secret';

after(async () => {
  closeAllRaw();
  await stopAll();
});

const err = (id, code, message) => ({ id, error: { code, message } });
const tokenFor = (sub) => hsToken({ sub, exp: now() + 600 }, SECRET);
/** Resolves once COND() is true (asked every 20 ms); fails naming WHAT after 10 s. */
async function until(cond, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}
const strip = (reply) => { const { skipped, ...rest } = reply; return rest; };

describe('positioning, recovery and history over the client protocol', () => {
  let srv;
  test('setup', async () => {
    srv = await startServer({
      http_stream: true, client_insecure: true, api_key: API_KEY, client_recovery_max_publication_limit: 2,
      client_history_max_publication_limit: 3,
      namespaces: [
        { name: 'pos', history_size: 10, history_ttl: '60s', allow_positioning: true, allow_recovery: true },
        { name: 'forced', history_size: 10, history_ttl: '60s', force_positioning: true },
        { name: 'nohist' },
      ],
    });
  });

  test('positioned/recoverable are honoured when allowed and the channel keeps history', async () => {
    const s = await connectRaw(srv.base);
    const r = strip(await call(s, { id: 2, subscribe: { channel: 'pos:a', positioned: true, recoverable: true } }));
    assert.equal(r.subscribe.positioned, true);
    assert.equal(r.subscribe.recoverable, true);
    assert.match(r.subscribe.epoch, /^[A-Za-z]{8}$/);
    const plain = strip(await call(s, { id: 3, subscribe: { channel: 'pos:b' } }));
    assert.deepEqual(plain, { id: 3, subscribe: {} });
    const forced = strip(await call(s, { id: 4, subscribe: { channel: 'forced:c' } }));
    assert.equal(forced.subscribe.positioned, true);
    assert.equal(forced.subscribe.recoverable, undefined);
    const none = strip(await call(s, { id: 5, subscribe: { channel: 'nohist:d', positioned: true, recoverable: true } }));
    assert.deepEqual(none, { id: 5, subscribe: {} });
  });

  test('publications on a history channel carry offsets; recovery within the limit, beyond it not', async () => {
    const s = await connectRaw(srv.base);
    const first = strip(await call(s, { id: 2, subscribe: { channel: 'pos:r', recoverable: true } }));
    const epoch = first.subscribe.epoch;
    for (let n = 1; n <= 3; n++) await api(srv.base, 'publish', { channel: 'pos:r', data: { n } }, { key: API_KEY });
    const offsets = [];
    while (offsets.length < 3) {
      const f = await s.nextJSON();
      if (f.push?.pub) offsets.push(f.push.pub.offset);
    }
    assert.deepEqual(offsets, [1, 2, 3]);
    const t = await connectRaw(srv.base);
    const ok = strip(await call(t, { id: 2, subscribe: { channel: 'pos:r', recoverable: true, recover: true, offset: 1, epoch } }));
    assert.equal(ok.subscribe.recovered, true);
    assert.equal(ok.subscribe.was_recovering, true);
    assert.deepEqual(ok.subscribe.publications.map((p) => p.data.n), [2, 3]);
    const tooMany = strip(await call(t, { id: 3, subscribe: { channel: 'pos:r2', recoverable: true } }));
    for (let n = 1; n <= 3; n++) await api(srv.base, 'publish', { channel: 'pos:r2', data: { n } }, { key: API_KEY });
    const u = await connectRaw(srv.base);
    const r2 = strip(await call(u, { id: 2, subscribe: { channel: 'pos:r2', recoverable: true, recover: true, offset: 0,
      epoch: tooMany.subscribe.epoch } }));
    assert.equal(r2.subscribe.recovered, undefined, 'three missed, limit two: not recovered');
    assert.equal(r2.subscribe.was_recovering, true);
    assert.equal(r2.subscribe.offset, 3);
    const rejected = await call(u, { id: 3, subscribe: { channel: 'pos:r3', recoverable: true, recover: true, offset: 5,
      epoch: 'abcdefgh', flag: 2 } });
    assert.deepEqual(strip(rejected), err(3, 112, 'unrecoverable position'));
  });

  test('the history command: limit, since, reverse, the cap, and errors 107/108/112', async () => {
    const s = await connectRaw(srv.base);
    for (let n = 1; n <= 5; n++) await api(srv.base, 'publish', { channel: 'pos:h', data: { n } }, { key: API_KEY });
    const all = strip(await call(s, { id: 2, history: { channel: 'pos:h', limit: -1 } }));
    assert.deepEqual(all.history.publications.map((p) => p.offset), [1, 2, 3], 'capped by client_history_max_publication_limit');
    assert.equal(all.history.offset, 5);
    const epoch = all.history.epoch;
    const since = strip(await call(s, { id: 3, history: { channel: 'pos:h', limit: 2, since: { offset: 3, epoch } } }));
    assert.deepEqual(since.history.publications.map((p) => p.offset), [4, 5]);
    const rev = strip(await call(s, { id: 4, history: { channel: 'pos:h', limit: 2, reverse: true } }));
    assert.deepEqual(rev.history.publications.map((p) => p.offset), [5, 4]);
    const none = strip(await call(s, { id: 5, history: { channel: 'pos:h' } }));
    assert.deepEqual(none.history, { publications: [], epoch, offset: 5 });
    assert.deepEqual(strip(await call(s, { id: 6, history: { channel: 'pos:h', limit: 1, reverse: true, since: { offset: 0, epoch } } })),
      err(6, 107, 'bad request'));
    assert.deepEqual(strip(await call(s, { id: 7, history: { channel: 'nohist:x', limit: 1 } })), err(7, 108, 'not available'));
    assert.deepEqual(strip(await call(s, { id: 8, history: { channel: 'pos:h', limit: 1, since: { offset: 1, epoch: 'zzzzzzzz' } } })),
      err(8, 112, 'unrecoverable position'));
  });
});

describe('channel names and limits', () => {
  test('channel_regex restricts a namespace; user-limited channels admit the listed users', async () => {
    const srv = await startServer({
      http_stream: true, token_hmac_secret_key: SECRET,
      namespaces: [
        { name: 'rx', channel_regex: '^[a-z]+$', allow_subscribe_for_client: true },
        { name: 'dm', allow_user_limited_channels: true },
      ],
    });
    const s = await connectRaw(srv.base, { connect: { token: tokenFor('ann') } });
    assert.deepEqual(strip(await call(s, { id: 2, subscribe: { channel: 'rx:abc' } })), { id: 2, subscribe: {} });
    assert.deepEqual(strip(await call(s, { id: 3, subscribe: { channel: 'rx:ABC1' } })), err(3, 102, 'unknown channel'));
    assert.deepEqual(strip(await call(s, { id: 4, subscribe: { channel: 'dm:chat#ann,bob' } })), { id: 4, subscribe: {} });
    assert.deepEqual(strip(await call(s, { id: 5, subscribe: { channel: 'dm:chat#bob,cid' } })), err(5, 103, 'permission denied'));
  });

  test('client_connection_limit and client_user_connection_limit ⇒ Disconnect 3504', async () => {
    const srv = await startServer({ http_stream: true, client_insecure: true, client_connection_limit: 2 });
    await connectRaw(srv.base);
    await connectRaw(srv.base);
    const third = await (await import('./lib/raw.js')).openRaw(srv.base, JSON.stringify({ connect: {}, id: 1 }));
    assert.deepEqual(await third.nextJSON(), { push: { disconnect: { code: 3504, reason: 'connection limit' } } });
    const users = await startServer({ http_stream: true, token_hmac_secret_key: SECRET, client_user_connection_limit: 1 });
    await connectRaw(users.base, { connect: { token: tokenFor('solo') } });
    await connectRaw(users.base, { connect: { token: tokenFor('other') } });
    const again = await (await import('./lib/raw.js')).openRaw(users.base,
      JSON.stringify({ connect: { token: tokenFor('solo') }, id: 1 }));
    assert.deepEqual(await again.nextJSON(), { push: { disconnect: { code: 3504, reason: 'connection limit' } } });
  });

  test('client_user_connection_limit: a place comes back when a connection of the user ends', async () => {
    const srv = await startServer({
      http_stream: true, token_hmac_secret_key: SECRET, client_user_connection_limit: 2, api_key: API_KEY,
    });
    const openRaw = (await import('./lib/raw.js')).openRaw;
    const connectSolo = () => openRaw(srv.base, JSON.stringify({ connect: { token: tokenFor('solo') }, id: 1 }));
    const refused = { push: { disconnect: { code: 3504, reason: 'connection limit' } } };
    const first = await connectRaw(srv.base, { connect: { token: tokenFor('solo') } });
    await connectRaw(srv.base, { connect: { token: tokenFor('solo') } });
    const third = await connectSolo();
    assert.deepEqual(await third.nextJSON(), refused);
    await third.expectEnd();
    first.close();
    // The server learns that the stream ended a moment after the client closed it: wait until only the
    // second connection is left, then the user has one place again, and only one.
    const clients = async () => (await api(srv.base, 'info', {}, { key: API_KEY })).json.result.nodes[0].num_clients;
    await until(async () => (await clients()) === 1, 'the closed connections to leave');
    const back = await connectSolo();
    assert.equal((await back.nextJSON()).id, 1, 'admitted: the connect reply');
    const over = await connectSolo();
    assert.deepEqual(await over.nextJSON(), refused);
  });

  test('send without a message handler ⇒ Disconnect 3508', async () => {
    const srv = await startServer({ http_stream: true, client_insecure: true });
    const s = await connectRaw(srv.base);
    await s.emulate([{ send: { data: { fire: 'forget' } } }]);
    assert.deepEqual(await s.nextJSON(), { push: { disconnect: { code: 3508, reason: 'not available' } } });
    await s.expectEnd();
  });
});

/** Opens a stream over a bare TCP socket, subscribes it to CHANNEL; returns { sock, client }. */
async function bareStream(base, channel) {
  const body = JSON.stringify({ connect: {}, id: 1 });
  const sock = net.connect(Number(new URL(base).port), '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.write(`POST /connection/http_stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  let text = '';
  while (!/"node":"[^"]+"/.test(text)) text += (await new Promise((r) => sock.once('data', r))).toString();
  const [session, node, client] = ['session', 'node', 'client'].map((k) => text.match(new RegExp(`"${k}":"([^"]+)"`))[1]);
  await fetch(base + '/emulation', { method: 'POST', body: JSON.stringify({ session, node,
    data: JSON.stringify({ id: 2, subscribe: { channel } }) }) });
  return { sock, client };
}

describe('a client that disappears', () => {
  test('is noticed at once while its stream is idle, long before the next ping', async () => {
    const srv = await startServer({
      http_stream: true, client_insecure: true, api_key: API_KEY, ping_interval: '60s', pong_timeout: '10s',
      namespaces: [{ name: 'pr', presence: true }], prometheus: true,
    });
    const { sock, client } = await bareStream(srv.base, 'pr:idle');
    assert.ok((await api(srv.base, 'presence', { channel: 'pr:idle' }, { key: API_KEY })).json.result.presence[client]);
    sock.destroy();
    const started = Date.now();
    for (;;) {
      const p = await api(srv.base, 'presence', { channel: 'pr:idle' }, { key: API_KEY });
      if (!p.json.result.presence[client]) break;
      assert.ok(Date.now() - started < 3000, 'gone within 3 s although the next ping is a minute away');
      await delay(50);
    }
    const metrics = await (await fetch(srv.base + '/metrics')).text();
    assert.match(metrics, /streamd_disconnects_total\{code="3000"\} 1/);
  });

  test('is cleaned up within ping_interval + pong_timeout: its presence entry goes', async () => {
    const srv = await startServer({
      http_stream: true, client_insecure: true, api_key: API_KEY, ping_interval: '2s', pong_timeout: '1s',
      namespaces: [{ name: 'pr', presence: true }],
    });
    // a raw TCP client that connects, subscribes through emulation, then vanishes without a word
    const body = JSON.stringify({ connect: {}, id: 1 });
    const sock = net.connect(Number(new URL(srv.base).port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`POST /connection/http_stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    let text = '';
    while (!/"node":"[^"]+"/.test(text)) text += (await new Promise((r) => sock.once('data', r))).toString();
    const session = text.match(/"session":"([^"]+)"/)[1];
    const node = text.match(/"node":"([^"]+)"/)[1];
    const client = text.match(/"client":"([^"]+)"/)[1];
    await fetch(srv.base + '/emulation', { method: 'POST', body: JSON.stringify({ session, node,
      data: JSON.stringify({ id: 2, subscribe: { channel: 'pr:room' } }) }) });
    const present = await api(srv.base, 'presence', { channel: 'pr:room' }, { key: API_KEY });
    assert.ok(present.json.result.presence[client]);
    sock.destroy();
    const started = Date.now();
    for (;;) {
      const p = await api(srv.base, 'presence', { channel: 'pr:room' }, { key: API_KEY });
      if (!p.json.result.presence[client]) break;
      assert.ok(Date.now() - started < 2000 + 1000 + 2500, 'gone within ping_interval + pong_timeout (+ slack)');
      await delay(100);
    }
  });
});
