// Centrifugo feature parity through the official SDK (PROTOCOL.md §4.3–§4.8, §5): JWT connection and
// subscription tokens, expiry and refresh, namespaces, presence, join/leave, history, recovery and
// server-side subscriptions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { newClient, connectedClient, subscribe, once, closeAllClients, SDK_TIMEOUT_MS } from './lib/sdk.js';
import { api } from './lib/http.js';
import { connectRaw, call, closeAllRaw } from './lib/raw.js';
import { hsToken, rsToken, rsaKeys, now } from './lib/jwt.js';

const SECRET = 'feature-test-secret';

const chat = {
  name: 'chat', presence: true, join_leave: true, history_size: 10, history_ttl: '300s', force_recovery: true,
  allow_subscribe_for_client: true, allow_publish_for_subscriber: true, allow_presence_for_subscriber: true,
  allow_history_for_subscriber: true,
};

let srv;
before(async () => {
  srv = await startServer({
    http_stream: true, api_key: API_KEY, token_hmac_secret_key: SECRET, client_expired_close_delay: '1s',
    namespaces: [chat, { name: 'news', allow_subscribe_for_client: true }],
    prometheus: true,
  });
});
after(async () => {
  closeAllClients();
  closeAllRaw();
  await stopAll();
});

const token = (sub, extra = {}) => hsToken({ sub, exp: now() + 3600, ...extra }, SECRET);

async function userClient(sub, extra = {}, opts = {}) {
  return connectedClient(srv.base, { token: token(sub, extra), ...opts });
}

describe('connection tokens', () => {
  test('a JWT connects as its user, and its info is visible in presence', async () => {
    const a = await userClient('alice', { info: { name: 'Alice' } });
    const sub = await subscribe(a, 'chat:presence1');
    const p = await sub.presence();
    const me = p.clients[a.connectedCtx.client];
    assert.equal(me.user, 'alice');
    assert.deepEqual(me.connInfo, { name: 'Alice' });
  });

  test('an expired token ⇒ 109, then the SDK connects with a token from getToken', async () => {
    let calls = 0;
    const c = newClient(srv.base, {
      token: hsToken({ sub: 'bob', exp: now() - 10 }, SECRET),
      getToken: async () => { calls++; return token('bob'); },
    });
    const connected = once(c, 'connected', SDK_TIMEOUT_MS + 5000);
    c.connect();
    await connected;
    assert.ok(calls >= 1, 'getToken was asked for a new token');
  });

  test('a token with a bad signature ⇒ Disconnect 3500 invalid token (no reconnect)', async () => {
    const bad = hsToken({ sub: 'mallory', exp: now() + 60 }, 'not-the-secret');
    const c = newClient(srv.base, { token: bad });
    const disconnected = once(c, 'disconnected');
    c.connect();
    const ctx = await disconnected;
    assert.equal(ctx.code, 3500);
    assert.equal(ctx.reason, 'invalid token');
  });

  test('refresh keeps a short-lived connection alive past its first expiry', async () => {
    let refreshes = 0;
    const c = newClient(srv.base, {
      token: hsToken({ sub: 'carol', exp: now() + 2 }, SECRET),
      getToken: async () => { refreshes++; return hsToken({ sub: 'carol', exp: now() + 2 }, SECRET); },
    });
    let lost = null;
    c.on('disconnected', (ctx) => { lost = ctx; });
    c.on('connecting', (ctx) => { if (ctx.code !== 0) lost = ctx; });
    const connected = once(c, 'connected');
    c.connect();
    const ctx = await connected;
    assert.equal(typeof ctx.client, 'string');
    await new Promise((r) => setTimeout(r, 5500));
    assert.equal(lost, null, `the connection stayed up (got ${JSON.stringify(lost)})`);
    assert.ok(refreshes >= 2, `refreshed ${refreshes} times`);
  });

  test('a connection not refreshed in time is closed with 3005 (connect reply carries expires and ttl)', async () => {
    const s = await connectRaw(srv.base, { connect: { token: hsToken({ sub: 'dave', exp: now() + 1 }, SECRET) } });
    assert.equal(s.connectReply.expires, true);
    assert.ok(s.connectReply.ttl <= 1);
    const started = Date.now();
    let frame;
    do frame = await s.nextJSON(8000); while (!frame.push?.disconnect);
    assert.deepEqual(frame.push.disconnect, { code: 3005, reason: 'connection expired' });
    // expiry 1 s + client_expired_close_delay 1 s (+ up to a second of timer rounding)
    assert.ok(Date.now() - started < 5000);
  });

  test('refresh over the raw protocol: a new token moves the expiry; another user\'s token ⇒ 3500', async () => {
    const s = await connectRaw(srv.base, { connect: { token: hsToken({ sub: 'erin2', exp: now() + 60 }, SECRET) } });
    const r = await call(s, { id: 2, refresh: { token: hsToken({ sub: 'erin2', exp: now() + 600 }, SECRET) } });
    assert.equal(r.refresh.expires, true);
    assert.ok(r.refresh.ttl > 590 && r.refresh.ttl <= 600);
    await s.emulate([{ id: 3, refresh: { token: hsToken({ sub: 'someone-else', exp: now() + 600 }, SECRET) } }]);
    let frame;
    do frame = await s.nextJSON(); while (!frame.push?.disconnect);
    assert.deepEqual(frame.push.disconnect, { code: 3500, reason: 'invalid token' });
  });

  test('RS256 tokens verify against token_rsa_public_key', async () => {
    const { publicKey, privateKey } = rsaKeys();
    const rsa = await startServer({ http_stream: true, token_rsa_public_key: publicKey });
    const c = await connectedClient(rsa.base, { token: rsToken({ sub: 'rsa-user', exp: now() + 60 }, privateKey) });
    assert.equal(c.state, 'connected');
    // an HS token is refused when only RSA is configured
    const hs = newClient(rsa.base, { token: token('hs-user') });
    const d = once(hs, 'disconnected');
    hs.connect();
    assert.equal((await d).code, 3500);
    c.disconnect();
    await rsa.stop();
  });
});

describe('channels', () => {
  test('an unknown namespace ⇒ 102', async () => {
    const c = await userClient('erin');
    const sub = c.newSubscription('nope:x');
    const unsubscribed = once(sub, 'unsubscribed');
    sub.subscribe();
    assert.equal((await unsubscribed).code, 102);
  });

  test('presence and presence_stats across two clients', async () => {
    const a = await userClient('u-a');
    const b = await userClient('u-b');
    const sa = await subscribe(a, 'chat:room2');
    await subscribe(b, 'chat:room2');
    const p = await sa.presence();
    assert.deepEqual(Object.keys(p.clients).sort(), [a.connectedCtx.client, b.connectedCtx.client].sort());
    const stats = await sa.presenceStats();
    assert.deepEqual(stats, { numClients: 2, numUsers: 2 });
  });

  test('join and leave events reach a subscriber that asked for them', async () => {
    const a = await userClient('watcher');
    const sa = await subscribe(a, 'chat:room3', { joinLeave: true });
    // the watcher's own join comes first; wait for the newcomer's
    const joined = new Promise((resolve) => sa.on('join', (ctx) => { if (ctx.info.user === 'newcomer') resolve(ctx); }));
    const b = await userClient('newcomer', { info: { role: 'guest' } });
    const sb = await subscribe(b, 'chat:room3');
    const j = await joined;
    assert.equal(j.info.user, 'newcomer');
    assert.equal(j.info.client, b.connectedCtx.client);
    assert.deepEqual(j.info.connInfo, { role: 'guest' });
    const left = once(sa, 'leave');
    sb.unsubscribe();
    assert.equal((await left).info.client, b.connectedCtx.client);
  });

  test('history with offsets and epoch', async () => {
    const offsets = [];
    let epoch = null;
    for (let i = 1; i <= 3; i++) {
      const r = await api(srv.base, 'publish', { channel: 'chat:hist', data: { i } }, { key: API_KEY });
      offsets.push(r.json.result.offset);
      epoch = epoch ?? r.json.result.epoch;
      assert.equal(r.json.result.epoch, epoch);
    }
    assert.deepEqual(offsets, [1, 2, 3]);
    assert.match(epoch, /^[A-Za-z]{8}$/);
    const c = await userClient('reader');
    const sub = await subscribe(c, 'chat:hist');
    const h = await sub.history({ limit: 10 });
    assert.equal(h.epoch, epoch);
    assert.equal(h.offset, 3);
    assert.deepEqual(h.publications.map((p) => [p.offset, p.data.i]), [[1, 1], [2, 2], [3, 3]]);
    const back = await sub.history({ limit: 2, reverse: true });
    assert.deepEqual(back.publications.map((p) => p.offset), [3, 2]);
  });

  test('a client whose stream is cut gets the three publications it missed back, in order, recovered', async () => {
    const c = await userClient('recoverer');
    const sub = await subscribe(c, 'chat:recover');
    assert.equal(sub.subscribedCtx.recoverable, true);
    await api(srv.base, 'publish', { channel: 'chat:recover', data: { n: 0 } }, { key: API_KEY });
    await sub.nextPub();
    const cut = once(c, 'connecting');
    await api(srv.base, 'disconnect', { client: c.connectedCtx.client, disconnect: { code: 4000, reason: 'cut' } },
      { key: API_KEY });
    assert.equal((await cut).code, 4000);
    for (let n = 1; n <= 3; n++) await api(srv.base, 'publish', { channel: 'chat:recover', data: { n } }, { key: API_KEY });
    const resubscribed = once(sub, 'subscribed', SDK_TIMEOUT_MS + 5000);
    const ctx = await resubscribed;
    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    const got = [await sub.nextPub(), await sub.nextPub(), await sub.nextPub()];
    assert.deepEqual(got.map((p) => p.data.n), [1, 2, 3]);
  });

  test('a server-side subscription from the token\'s channels claim delivers publications', async () => {
    const c = newClient(srv.base, { token: token('srv-user', { channels: ['news:srv'] }) });
    const subscribed = once(c, 'subscribed');
    const connected = once(c, 'connected');
    c.connect();
    await connected;
    assert.equal((await subscribed).channel, 'news:srv');
    const pub = once(c, 'publication');
    await api(srv.base, 'publish', { channel: 'news:srv', data: { hello: 'server-side' } }, { key: API_KEY });
    const p = await pub;
    assert.equal(p.channel, 'news:srv');
    assert.deepEqual(p.data, { hello: 'server-side' });
  });

  test('$private channels: without a token ⇒ 103, with a subscription token ⇒ subscribed', async () => {
    const c = await userClient('priv');
    const denied = c.newSubscription('$chat:secret');
    const unsub = once(denied, 'unsubscribed');
    denied.subscribe();
    assert.equal((await unsub).code, 103);
    c.removeSubscription(denied);
    const sub = c.newSubscription('$chat:secret', {
      getToken: async (ctx) => hsToken({ sub: 'priv', channel: ctx.channel, exp: now() + 60 }, SECRET),
    });
    const ok = once(sub, 'subscribed');
    sub.subscribe();
    await ok;
  });
});

describe('subscription tokens and forced join/leave', () => {
  test('sub_refresh with a new subscription token; a token for another channel ⇒ 3500', async () => {
    const s = await connectRaw(srv.base, { connect: { token: token('sr-user') } });
    const subTok = (channel, exp) => hsToken({ sub: 'sr-user', channel, exp }, SECRET);
    const sub = await call(s, { id: 2, subscribe: { channel: '$chat:sr', token: subTok('$chat:sr', now() + 30) } });
    assert.equal(sub.subscribe.expires, true);
    assert.ok(sub.subscribe.ttl > 20 && sub.subscribe.ttl <= 30, `ttl ${sub.subscribe.ttl}`);
    const r = await call(s, { id: 3, sub_refresh: { channel: '$chat:sr', token: subTok('$chat:sr', now() + 300) } });
    assert.equal(r.sub_refresh.expires, true);
    assert.ok(r.sub_refresh.ttl > 290);
    const expired = await call(s, { id: 4, sub_refresh: { channel: '$chat:sr', token: subTok('$chat:sr', now() - 5) } });
    assert.deepEqual(expired.error, { code: 109, message: 'token expired' });
    await s.emulate([{ id: 5, sub_refresh: { channel: '$chat:sr', token: subTok('$chat:other', now() + 300) } }]);
    let frame;
    do frame = await s.nextJSON(); while (!frame.push?.disconnect);
    assert.equal(frame.push.disconnect.code, 3500);
  });

  test('an expired subscription token is not refreshed ⇒ unsubscribe push 2501 (the SDK resubscribes)', async () => {
    const quick = await startServer({ http_stream: true, token_hmac_secret_key: SECRET, ping_interval: '2s',
      pong_timeout: '1s', client_expired_close_delay: '1s' });
    const s = await connectRaw(quick.base, { connect: { token: token('exp-sub') } });
    const sub = await call(s, { id: 2, subscribe: { channel: '$short',
      token: hsToken({ sub: 'exp-sub', channel: '$short', exp: now() + 1 }, SECRET) } });
    assert.equal(sub.subscribe.expires, true);
    const started = Date.now();
    let frame;
    for (;;) {
      frame = await s.nextJSON(8000);
      if (Object.keys(frame).length === 0) { await s.emulate([{}]); continue; } // answer pings
      if (frame.push?.unsubscribe) break;
    }
    assert.deepEqual(frame.push, { channel: '$short', unsubscribe: { code: 2501, reason: 'subscription expired' } });
    assert.ok(Date.now() - started < 7000, 'within expiry + delay + one ping interval');
    await quick.stop();
  });

  test('force_push_join_leave sends joins to subscribers that did not ask', async () => {
    const forced = await startServer({ http_stream: true, client_insecure: true,
      namespaces: [{ name: 'fj', presence: true, join_leave: true, force_push_join_leave: true }] });
    const a = await connectRaw(forced.base);
    await call(a, { id: 2, subscribe: { channel: 'fj:room' } });
    const b = await connectRaw(forced.base);
    await call(b, { id: 2, subscribe: { channel: 'fj:room' } });
    let frame;
    do frame = await a.nextJSON(); while (!(frame.push?.join && frame.push.join.info.client === b.client));
    assert.deepEqual(frame.push, { channel: 'fj:room', join: { info: { user: '', client: b.client } } });
    await forced.stop();
  });
});

describe('operations', () => {
  test('GET /health ⇒ 200 {} when health = true, 404 when off', async () => {
    const on = await startServer({ health: true });
    const res = await fetch(on.base + '/health');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.equal((await fetch(on.base + '/health', { method: 'POST' })).status, 405);
    assert.equal((await fetch(srv.base + '/health')).status, 404);
    await on.stop();
  });

  test('/metrics is Prometheus text and its counters move', async () => {
    const scrape = async () => {
      const res = await fetch(srv.base + '/metrics');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^text\/plain/);
      const text = await res.text();
      const values = {};
      for (const line of text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+]+)$/);
        assert.ok(m, `not a sample line: ${line}`);
        values[m[1]] = Number(m[2]);
      }
      return values;
    };
    const before = await scrape();
    await api(srv.base, 'publish', { channel: 'news:metrics', data: { m: 1 } }, { key: API_KEY });
    const c = await userClient('metrics-user');
    const after = await scrape();
    assert.equal(after.streamd_publications_total, before.streamd_publications_total + 1);
    assert.ok(after.streamd_connections_total > before.streamd_connections_total);
    assert.ok(after['streamd_connections{transport="http_stream",protocol="json"}'] >= 1);
    c.disconnect();
  });
});
