// Client errors and permissions (PROTOCOL.md §4.3, §4.5, §5.4): error replies 102/103/104/105/106/107,
// channel options at top level and in namespaces, anonymous connections, connect without credentials.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll } from './lib/server.js';
import { connectRaw, openRaw, closeAllRaw, call } from './lib/raw.js';
import { newClient, connectedClient, subscribe, closeAllClients, once } from './lib/sdk.js';

const err = (id, code, message) => ({ id, error: { code, message }, skipped: [] });

describe('errors and permissions (anonymous connections, channel options)', () => {
  let srv;

  before(async () => {
    srv = await startServer({
      http_stream: true,
      allow_anonymous_connect_without_token: true,
      client_channel_limit: 3,
      // Channels without a namespace: anyone may subscribe, nobody may publish.
      allow_subscribe_for_client: true,
      allow_subscribe_for_anonymous: true,
      namespaces: [
        { name: 'locked', presence: false },
        {
          name: 'pub',
          allow_subscribe_for_client: true,
          allow_subscribe_for_anonymous: true,
          allow_publish_for_subscriber: true,
          allow_publish_for_anonymous: true,
        },
        { name: 'anyone', allow_publish_for_client: true, allow_publish_for_anonymous: true },
        { name: 'users-only', allow_subscribe_for_client: true },
      ],
    });
  });

  after(async () => {
    closeAllClients();
    closeAllRaw();
    await stopAll();
  });

  it('an anonymous connection is accepted', async () => {
    const s = await connectRaw(srv.base);
    assert.ok(s.client);
    s.close();
  });

  it('102 unknown channel for a channel in an unknown namespace', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual(await call(s, { subscribe: { channel: 'nope:x' }, id: 2 }), err(2, 102, 'unknown channel'));
    assert.deepEqual(await call(s, { publish: { channel: 'nope:x', data: {} }, id: 3 }), err(3, 102, 'unknown channel'));
    s.close();
  });

  it('103 permission denied for a subscribe the options do not allow', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual(await call(s, { subscribe: { channel: 'locked:x' }, id: 2 }), err(2, 103, 'permission denied'));
    // allow_subscribe_for_client without allow_subscribe_for_anonymous: not for an anonymous user.
    assert.deepEqual(await call(s, { subscribe: { channel: 'users-only:x' }, id: 3 }), err(3, 103, 'permission denied'));
    // An error does not end the connection.
    assert.deepEqual(await call(s, { subscribe: { channel: 'free' }, id: 4 }), { id: 4, subscribe: {}, skipped: [] });
    s.close();
  });

  it('108 not available for an rpc when no RPC proxy is configured (as Centrifugo)', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual(await call(s, { rpc: { method: 'echo', data: { a: 1 } }, id: 2 }), err(2, 108, 'not available'));
    assert.deepEqual(await call(s, { rpc: { method: '', data: {} }, id: 3 }), err(3, 108, 'not available'));
    s.close();
  });

  it('105 already subscribed', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual(await call(s, { subscribe: { channel: 'twice' }, id: 2 }), { id: 2, subscribe: {}, skipped: [] });
    assert.deepEqual(await call(s, { subscribe: { channel: 'twice' }, id: 3 }), err(3, 105, 'already subscribed'));
    // After an unsubscribe the channel can be subscribed again.
    await call(s, { unsubscribe: { channel: 'twice' }, id: 4 });
    assert.deepEqual(await call(s, { subscribe: { channel: 'twice' }, id: 5 }), { id: 5, subscribe: {}, skipped: [] });
    s.close();
  });

  it('106 limit exceeded above client_channel_limit (3)', async () => {
    const s = await connectRaw(srv.base);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await call(s, { subscribe: { channel: `lim${i}` }, id: 2 + i }), { id: 2 + i, subscribe: {}, skipped: [] });
    }
    assert.deepEqual(await call(s, { subscribe: { channel: 'lim3' }, id: 5 }), err(5, 106, 'limit exceeded'));
    // Freeing a slot makes room again.
    await call(s, { unsubscribe: { channel: 'lim0' }, id: 6 });
    assert.deepEqual(await call(s, { subscribe: { channel: 'lim3' }, id: 7 }), { id: 7, subscribe: {}, skipped: [] });
    s.close();
  });

  it('107 bad request for a channel name over 255 bytes; 255 bytes is fine', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual(await call(s, { subscribe: { channel: 'c'.repeat(256) }, id: 2 }), err(2, 107, 'bad request'));
    // 255 bytes counted in UTF-8: 85 three-byte characters.
    assert.deepEqual(await call(s, { subscribe: { channel: '€'.repeat(86) }, id: 3 }), err(3, 107, 'bad request'));
    assert.deepEqual(await call(s, { subscribe: { channel: '€'.repeat(85) }, id: 4 }), { id: 4, subscribe: {}, skipped: [] });
    assert.deepEqual(await call(s, { subscribe: { channel: 'c'.repeat(255) }, id: 5 }), { id: 5, subscribe: {}, skipped: [] });
    s.close();
  });

  it('an empty channel in subscribe ⇒ Disconnect 3501', async () => {
    const s = await connectRaw(srv.base);
    assert.equal((await s.emulate([{ subscribe: { channel: '' }, id: 2 }])).status, 204);
    await s.expectDisconnect(3501);
  });

  it('103 for a publish without permission', async () => {
    const s = await connectRaw(srv.base);
    // Top level: subscribe allowed, publish not.
    await call(s, { subscribe: { channel: 'free2' }, id: 2 });
    assert.deepEqual(await call(s, { publish: { channel: 'free2', data: { x: 1 } }, id: 3 }), err(3, 103, 'permission denied'));
    // allow_publish_for_subscriber: only once subscribed.
    assert.deepEqual(await call(s, { publish: { channel: 'pub:room', data: { x: 1 } }, id: 4 }), err(4, 103, 'permission denied'));
    await call(s, { subscribe: { channel: 'pub:room' }, id: 5 });
    const res = await s.emulate([{ publish: { channel: 'pub:room', data: { x: 2 } }, id: 6 }]);
    assert.equal(res.status, 204);
    const frames = [await s.nextJSON(), await s.nextJSON()];
    assert.deepEqual(frames.find((f) => f.id), { id: 6, publish: {} });
    assert.deepEqual(frames.find((f) => f.push), { push: { channel: 'pub:room', pub: { data: { x: 2 }, info: { user: '', client: s.client } } } });
    // allow_publish_for_client (+ anonymous): without being subscribed.
    assert.deepEqual(await call(s, { publish: { channel: 'anyone:x', data: { x: 3 } }, id: 7 }), { id: 7, publish: {}, skipped: [] });
    // But subscribing there is not allowed.
    assert.deepEqual(await call(s, { subscribe: { channel: 'anyone:x' }, id: 8 }), err(8, 103, 'permission denied'));
    s.close();
  });

  it('two anonymous SDK clients exchange publications in a namespace that allows it', async () => {
    const a = await connectedClient(srv.base);
    const b = await connectedClient(srv.base);
    const subA = await subscribe(a, 'pub:chat');
    const subB = await subscribe(b, 'pub:chat');
    await subA.publish({ from: 'a' });
    assert.deepEqual((await subB.nextPub()).data, { from: 'a' });
    assert.deepEqual((await subA.nextPub()).data, { from: 'a' });
    await subB.publish({ from: 'b' });
    assert.deepEqual((await subA.nextPub()).data, { from: 'b' });
    assert.deepEqual((await subB.nextPub()).data, { from: 'b' });
    // A refused publish rejects the SDK promise with the server's error.
    const plain = await subscribe(a, 'plain');
    await assert.rejects(plain.publish({ no: 1 }), (e) => e.code === 103 && e.message === 'permission denied');
    a.disconnect();
    b.disconnect();
  });

  it('the SDK: a forbidden subscription ends unsubscribed with code 103', async () => {
    const a = await connectedClient(srv.base);
    const sub = a.newSubscription('locked:y');
    const unsubscribed = once(sub, 'unsubscribed');
    sub.subscribe();
    const ctx = await unsubscribed;
    assert.equal(ctx.code, 103);
    assert.equal(ctx.reason, 'permission denied');
    assert.equal(a.state, 'connected');
    a.disconnect();
  });
});

describe('connect without credentials', () => {
  let srv;

  before(async () => {
    // Neither client_insecure nor allow_anonymous_connect_without_token, and no token.
    srv = await startServer({ http_stream: true, allow_subscribe_for_client: true });
  });

  after(async () => {
    closeAllClients();
    closeAllRaw();
    await stopAll();
  });

  it('a raw connect ⇒ 200, Disconnect 3501, end of stream', async () => {
    const s = await openRaw(srv.base, JSON.stringify({ connect: { name: 'anon' }, id: 1 }));
    assert.equal(s.status, 200);
    await s.expectDisconnect(3501);
  });

  it('the SDK ends disconnected with code 3501 and does not reconnect', async () => {
    const c = newClient(srv.base);
    const connectingEvents = [];
    c.on('connecting', (ctx) => connectingEvents.push(ctx));
    const disconnected = once(c, 'disconnected');
    c.connect();
    const ctx = await disconnected;
    assert.equal(ctx.code, 3501);
    assert.equal(typeof ctx.reason, 'string');
    assert.equal(c.state, 'disconnected');
    assert.deepEqual(connectingEvents, [{ code: 0, reason: 'connect called' }]);
    assert.deepEqual(c.streamStatuses, [200], 'one stream POST, no reconnect');
  });
});
