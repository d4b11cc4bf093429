// The official SDK (centrifuge 5.8.0) over http_stream + emulation against the real streamd:
// connect, subscribe, publish, receive, unsubscribe, fan-out to many clients, large unicode payloads.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { api, withTimeout } from './lib/http.js';
import { connectedClient, subscribe, closeAllClients, once, newClient, SDK_TIMEOUT_MS } from './lib/sdk.js';

describe('SDK over http_stream', () => {
  let srv;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG });
  });

  after(async () => {
    closeAllClients();
    await stopAll();
  });

  it('connects and reports the http_stream transport and a client id', async () => {
    const c = newClient(srv.base);
    const states = [];
    c.on('state', (ctx) => states.push(ctx.newState));
    const connecting = once(c, 'connecting');
    const connected = once(c, 'connected');
    c.connect();
    assert.deepEqual(await connecting, { code: 0, reason: 'connect called' });
    const ctx = await connected;
    assert.equal(ctx.transport, 'http_stream');
    assert.match(ctx.client, /^\S+$/);
    assert.equal(c.state, 'connected');
    assert.deepEqual(states, ['connecting', 'connected']);
    c.disconnect();
    assert.equal(c.state, 'disconnected');
  });

  it('two clients exchange publications (the publisher receives its own too)', async () => {
    const a = await connectedClient(srv.base);
    const b = await connectedClient(srv.base);
    assert.notEqual(a.connectedCtx.client, b.connectedCtx.client);
    const subA = await subscribe(a, 'room');
    const subB = await subscribe(b, 'room');

    const res = await subA.publish({ text: 'hello from a', n: 1 });
    assert.deepEqual(res, {}, 'publish result');
    for (const sub of [subA, subB]) {
      const p = await sub.nextPub();
      assert.equal(p.channel, 'room');
      assert.deepEqual(p.data, { text: 'hello from a', n: 1 });
      assert.equal(p.info?.client, a.connectedCtx.client, 'info.client names the publisher');
      assert.equal(p.info?.user, '', 'anonymous publisher');
    }

    await b.publish('room', { text: 'hello from b', n: 2 });
    for (const sub of [subA, subB]) {
      const p = await sub.nextPub();
      assert.deepEqual(p.data, { text: 'hello from b', n: 2 });
      assert.equal(p.info?.client, b.connectedCtx.client);
    }

    // Commands sent in one emulation request (SDK batching) are processed and delivered in order.
    // (Separate concurrent emulation requests have no order: PROTOCOL.md §2.3.)
    b.startBatching();
    const results = [];
    for (let i = 0; i < 20; i++) results.push(subB.publish({ seq: i }));
    b.stopBatching();
    await Promise.all(results);
    assert.ok(b.emulationRequests.some((r) => (r.data.match(/"publish"/g) || []).length === 20),
      'the 20 publish commands went in one emulation request');
    for (const sub of [subA, subB]) {
      for (let i = 0; i < 20; i++) assert.deepEqual((await sub.nextPub()).data, { seq: i });
    }
    assert.equal(subA.pubs.length, 22);
    assert.equal(subB.pubs.length, 22);
    a.disconnect();
    b.disconnect();
  });

  it('unsubscribe stops delivery, subscribing again resumes it', async () => {
    const a = await connectedClient(srv.base);
    const b = await connectedClient(srv.base);
    const subA = await subscribe(a, 'unsub-test');
    const subB = await subscribe(b, 'unsub-test');
    const markerB = await subscribe(b, 'unsub-marker');

    await subA.publish({ m: 'before' });
    assert.deepEqual((await subA.nextPub()).data, { m: 'before' });
    assert.deepEqual((await subB.nextPub()).data, { m: 'before' });

    const unsubscribed = once(subB, 'unsubscribed');
    subB.unsubscribe();
    const uctx = await unsubscribed;
    assert.equal(uctx.channel, 'unsub-test');
    assert.equal(subB.state, 'unsubscribed');
    // The SDK sends the unsubscribe command without waiting for its reply: wait until the server
    // has answered the emulation request that carried it (204 = its commands ran).
    await b.settled();
    assert.ok(b.emulationRequests.some((r) => /"unsubscribe"/.test(r.data)), 'unsubscribe command sent');

    await subA.publish({ m: 'after' });
    assert.deepEqual((await subA.nextPub()).data, { m: 'after' });
    // A marker published after "after" reaches b after "after" would have: b must see only the marker.
    const r = await api(srv.base, 'publish', { channel: 'unsub-marker', data: { marker: 2 } }, { key: API_KEY });
    assert.equal(r.status, 200);
    assert.deepEqual((await markerB.nextPub()).data, { marker: 2 });
    assert.deepEqual(subB.pubs.map((p) => p.data), [{ m: 'before' }], 'no publication after unsubscribe');

    const resubscribed = once(subB, 'subscribed');
    subB.subscribe();
    await resubscribed;
    await subA.publish({ m: 'again' });
    assert.deepEqual((await subB.nextPub()).data, { m: 'again' });
    a.disconnect();
    b.disconnect();
  });

  it('200 clients all receive one API publication exactly once', { timeout: 90000 }, async () => {
    const N = 200;
    const clients = [];
    const subs = [];
    // Connect in batches: 200 simultaneous connects on a sanitizer build can exceed the SDK's timeouts.
    for (let i = 0; i < N; i += 25) {
      const batch = await Promise.all(Array.from({ length: Math.min(25, N - i) }, async () => {
        const c = await connectedClient(srv.base);
        const s = await subscribe(c, 'fanout');
        return [c, s];
      }));
      for (const [c, s] of batch) {
        clients.push(c);
        subs.push(s);
      }
    }
    assert.equal(new Set(clients.map((c) => c.connectedCtx.client)).size, N, 'client ids are unique');

    const r1 = await api(srv.base, 'publish', { channel: 'fanout', data: { hello: 'everyone', n: 1 } }, { key: API_KEY });
    assert.equal(r1.status, 200);
    assert.deepEqual(r1.json, { result: {} });
    const r2 = await api(srv.base, 'publish', { channel: 'fanout', data: { hello: 'everyone', n: 2 } }, { key: API_KEY });
    assert.equal(r2.status, 200);

    await withTimeout(Promise.all(subs.map(async (s) => {
      assert.deepEqual((await s.nextPub(SDK_TIMEOUT_MS * 2)).data, { hello: 'everyone', n: 1 });
      assert.deepEqual((await s.nextPub(SDK_TIMEOUT_MS * 2)).data, { hello: 'everyone', n: 2 });
    })), 60000, 'all 200 clients receive both publications');
    // The second publication arrived right behind the first: a duplicate of the first would show here.
    for (const s of subs) assert.equal(s.pubs.length, 2);
    for (const c of clients) assert.equal(c.state, 'connected');
    for (const c of clients) c.disconnect();
  });

  it('a 50 KB unicode publication arrives intact', async () => {
    const a = await connectedClient(srv.base);
    const b = await connectedClient(srv.base);
    const subA = await subscribe(a, 'big');
    const subB = await subscribe(b, 'big');

    // Mixed 1-, 2-, 3- and 4-byte UTF-8 characters plus quotes, a backslash, a newline and a tab
    // (escaped in JSON); the emulation request carrying it stays under the default 64 KiB limit.
    const unit = 'aé€😀 ñ 中文 ✓ ₿ ';
    let text = 'start "quoted" back\\slash new\nline tab\t ';
    while (Buffer.byteLength(text, 'utf8') < 50 * 1024) text += unit;
    const data = { text, nested: { arr: [1, 'два', { three: '三' }] } };
    assert.ok(Buffer.byteLength(JSON.stringify(data)) >= 50 * 1024);

    await subA.publish(data);
    assert.deepEqual((await subB.nextPub()).data, data);
    assert.deepEqual((await subA.nextPub()).data, data);

    // The same through the server API.
    const r = await api(srv.base, 'publish', { channel: 'big', data }, { key: API_KEY });
    assert.equal(r.status, 200);
    assert.deepEqual((await subB.nextPub()).data, data);
    a.disconnect();
    b.disconnect();
  });

  it('an rpc without an RPC proxy fails with 108 "not available" and the client stays connected', async () => {
    const a = await connectedClient(srv.base);
    await assert.rejects(a.rpc('echo', { x: 1 }), (err) => {
      assert.equal(err.code, 108);
      assert.equal(err.message, 'not available');
      return true;
    });
    assert.equal(a.state, 'connected');
    const sub = await subscribe(a, 'after-rpc');
    await sub.publish({ ok: true });
    assert.deepEqual((await sub.nextPub()).data, { ok: true });
    a.disconnect();
  });

  it('a subscription to an unknown namespace ends unsubscribed with code 102', async () => {
    const a = await connectedClient(srv.base);
    const sub = a.newSubscription('nope:x');
    const unsubscribed = once(sub, 'unsubscribed');
    sub.subscribe();
    const ctx = await unsubscribed;
    assert.equal(ctx.code, 102);
    assert.equal(ctx.reason, 'unknown channel');
    assert.equal(a.state, 'connected');
    a.disconnect();
  });

  it('disconnect() from the client side frees the session: publications go on for the others', async () => {
    const a = await connectedClient(srv.base);
    const b = await connectedClient(srv.base);
    const subA = await subscribe(a, 'leaving');
    const subB = await subscribe(b, 'leaving');
    const disconnected = once(a, 'disconnected');
    a.disconnect();
    assert.deepEqual(await disconnected, { code: 0, reason: 'disconnect called' });
    for (let i = 0; i < 5; i++) await subB.publish({ i });
    for (let i = 0; i < 5; i++) assert.deepEqual((await subB.nextPub()).data, { i });
    assert.equal(subA.pubs.length, 0);
    b.disconnect();
  });
});
