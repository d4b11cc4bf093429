// The HTTP-streaming endpoint byte by byte, with a raw client (PROTOCOL.md §2.2, §3, §4).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG } from './lib/server.js';
import { connectRaw, openRaw, closeAllRaw, call } from './lib/raw.js';

describe('POST /connection/http_stream (raw)', () => {
  let srv;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, ping_interval: '20s', pong_timeout: '5s' });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('answers 200 with anti-buffering headers and the connect reply as the first line', async () => {
    const s = await connectRaw(srv.base);
    assert.equal(s.status, 200);
    assert.equal(s.headers['x-accel-buffering'], 'no');
    assert.match(s.headers['cache-control'] || '', /no-cache/);
    assert.equal(s.headers['transfer-encoding'], 'chunked');
    const c = s.connectReply;
    assert.equal(typeof c.client, 'string');
    assert.ok(c.client.length > 0);
    assert.equal(typeof c.version, 'string');
    assert.equal(c.ping, 20, 'ping interval in seconds');
    assert.equal(c.pong, true);
    assert.equal(typeof c.session, 'string');
    assert.ok(c.session.length > 0);
    assert.equal(typeof c.node, 'string');
    assert.ok(c.node.length > 0);
    assert.deepEqual(Object.keys(c).filter((k) => !['client', 'version', 'ping', 'pong', 'session', 'node', 'data', 'subs', 'expires', 'ttl', 'time'].includes(k)), [],
      'no unknown fields in the connect result');

    const s2 = await connectRaw(srv.base);
    assert.notEqual(s2.client, s.client, 'client ids differ');
    assert.notEqual(s2.session, s.session, 'session ids differ');
    assert.equal(s2.node, s.node, 'one node id per process');
    s.close();
    s2.close();
  });

  it('echoes the id of the connect command', async () => {
    const s = await connectRaw(srv.base, { id: 42 });
    assert.equal(s.connectReply.client.length > 0, true);
    s.close();
  });

  it('subscribe, publish and unsubscribe always carry a result; the publisher receives its publication', async () => {
    const s = await connectRaw(srv.base);
    assert.deepEqual(await call(s, { subscribe: { channel: 'raw1' }, id: 2 }), { id: 2, subscribe: {}, skipped: [] });

    const res = await s.emulate([{ publish: { channel: 'raw1', data: { text: 'hi', n: [1, 2, 3] } }, id: 3 }]);
    assert.equal(res.status, 204);
    assert.equal(res.body, '');
    const frames = [await s.nextJSON(), await s.nextJSON()];
    const reply = frames.find((f) => f.id === 3);
    const push = frames.find((f) => f.push);
    assert.deepEqual(reply, { id: 3, publish: {} });
    assert.deepEqual(push, {
      push: { channel: 'raw1', pub: { data: { text: 'hi', n: [1, 2, 3] }, info: { user: '', client: s.client } } },
    });

    assert.deepEqual(await call(s, { unsubscribe: { channel: 'raw1' }, id: 4 }), { id: 4, unsubscribe: {}, skipped: [] });
    // Unsubscribing from a channel one is not subscribed to succeeds too.
    assert.deepEqual(await call(s, { unsubscribe: { channel: 'never-subscribed' }, id: 5 }), { id: 5, unsubscribe: {}, skipped: [] });

    // After the unsubscribe, our own publication is acknowledged but not delivered back.
    await s.emulate([{ publish: { channel: 'raw1', data: { n: 2 } }, id: 6 }, { subscribe: { channel: 'raw1-marker' }, id: 7 }]);
    assert.deepEqual(await s.nextJSON(), { id: 6, publish: {} });
    assert.deepEqual(await s.nextJSON(), { id: 7, subscribe: {} });
    s.close();
  });

  it('processes the commands of one emulation request in order', async () => {
    const s = await connectRaw(srv.base);
    const cmds = [
      { subscribe: { channel: 'order-a' }, id: 2 },
      { subscribe: { channel: 'order-b' }, id: 3 },
      { publish: { channel: 'order-a', data: { x: 'a' } }, id: 4 },
      { publish: { channel: 'order-b', data: { x: 'b' } }, id: 5 },
      { unsubscribe: { channel: 'order-a' }, id: 6 },
      { publish: { channel: 'order-a', data: { x: 'lost' } }, id: 7 },
    ];
    const res = await s.emulate(cmds);
    assert.equal(res.status, 204);
    const frames = [];
    while (!frames.some((f) => f.id === 7)) frames.push(await s.nextJSON());
    assert.deepEqual(frames.filter((f) => f.id).map((f) => f.id), [2, 3, 4, 5, 6, 7]);
    const pubs = frames.filter((f) => f.push).map((f) => [f.push.channel, f.push.pub.data.x]);
    assert.deepEqual(pubs, [['order-a', 'a'], ['order-b', 'b']]);
    // Nothing else is pending: the next command's reply is the next frame.
    assert.deepEqual(await call(s, { unsubscribe: { channel: 'order-b' }, id: 8 }), { id: 8, unsubscribe: {}, skipped: [] });
    s.close();
  });

  it('delivers JSON payloads of every kind unchanged (unicode, escapes, nesting, scalars)', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'verbatim' }, id: 2 });
    const payloads = [
      { neg: -1.5e-7, t: true, f: false, z: null, max: 9007199254740991 },
      ['a', { b: ['c'] }, [], {}],
      'just a string with "quotes" and \\ and \n and \u0001 and ☃',
      42,
      { emoji: '😀👍🏽', cjk: '汉字', rtl: 'שלום', nul: '\u0000' },
    ];
    let id = 3;
    for (const data of payloads) {
      assert.equal((await s.emulate([{ publish: { channel: 'verbatim', data }, id }])).status, 204);
      const push = await s.waitFor((m) => !!m.push);
      assert.deepEqual(push.push.pub.data, data);
      id++;
    }
    s.close();
  });

  it('embeds data as raw JSON: number texts survive, even beyond 64-bit integers', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'rawnum' }, id: 2 });
    const res = await s.emulate('{"publish":{"channel":"rawnum","data":{"a":1.50,"huge":123456789012345678901234567890,"u64":18446744073709551615,"e":1E+2}},"id":3}');
    assert.equal(res.status, 204);
    const push = await s.waitFor((m) => !!m.push || m.id === 3);
    assert.ok(push.push && push.push.pub, `a publication, got ${JSON.stringify(push)}`);
    const line = s.allLines.find((l) => l.includes('"huge"'));
    assert.match(line, /"huge":\s*123456789012345678901234567890\b/, `integer text kept: ${line}`);
    assert.match(line, /"u64":\s*18446744073709551615\b/, `integer text kept: ${line}`);
    assert.match(line, /"a":\s*1\.50\b/, `number text kept: ${line}`);
    assert.match(line, /"e":\s*1E\+2\b/, `number text kept: ${line}`);
    s.close();
  });

  it('concurrent emulation requests for one session: every command is answered exactly once', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'concurrent' }, id: 2 });
    const N = 50;
    const statuses = await Promise.all(Array.from({ length: N }, (_, i) =>
      s.emulate([{ publish: { channel: 'concurrent', data: { i } }, id: 10 + i }]).then((r) => r.status)));
    assert.deepEqual(statuses, Array(N).fill(204));
    const replies = new Set();
    const pubs = new Set();
    while (replies.size < N || pubs.size < N) {
      const f = await s.nextJSON();
      if (f.push) {
        assert.ok(!pubs.has(f.push.pub.data.i), `publication ${f.push.pub.data.i} twice`);
        pubs.add(f.push.pub.data.i);
      } else {
        assert.deepEqual(f, { id: f.id, publish: {} });
        assert.ok(!replies.has(f.id), `reply ${f.id} twice`);
        replies.add(f.id);
      }
    }
    assert.deepEqual([...replies].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => 10 + i));
    s.close();
  });

  it('a first command that is not connect ⇒ 200 and Disconnect 3501, then the stream ends', async () => {
    const s = await openRaw(srv.base, JSON.stringify({ subscribe: { channel: 'x' }, id: 1 }));
    assert.equal(s.status, 200);
    const d = await s.expectDisconnect(3501);
    assert.equal(d.reason, 'bad request');
  });

  it('an empty body ⇒ 200 and Disconnect 3501', async () => {
    const s = await openRaw(srv.base, '');
    assert.equal(s.status, 200);
    await s.expectDisconnect(3501);
  });

  it('a body that is not JSON ⇒ 200 and Disconnect 3501', async () => {
    const s = await openRaw(srv.base, 'hello, is this json?');
    assert.equal(s.status, 200);
    await s.expectDisconnect(3501);
  });

  it('a connect command without id ⇒ Disconnect 3501', async () => {
    const s = await openRaw(srv.base, JSON.stringify({ connect: { name: 'raw' } }));
    assert.equal(s.status, 200);
    await s.expectDisconnect(3501);
  });

  for (const [name, data] of [
    ['not JSON', 'this is {not json'],
    ['a command without id', JSON.stringify({ subscribe: { channel: 'x' } })],
    ['a command with no known method', JSON.stringify({ id: 2, frobnicate: {} })],
    ['a second connect', JSON.stringify({ connect: { name: 'again' }, id: 2 })],
    ['a pong while no ping is outstanding', '{}'],
  ]) {
    it(`${name} in the emulation data ⇒ Disconnect 3501 on the stream, the POST still 204`, async () => {
      const s = await connectRaw(srv.base);
      const res = await s.emulate(data);
      assert.equal(res.status, 204);
      const d = await s.expectDisconnect(3501);
      assert.equal(d.reason, 'bad request');
      // The session is gone: its emulation requests are accepted and dropped.
      const again = await s.emulate([{ subscribe: { channel: 'x' }, id: 3 }]);
      assert.equal(again.status, 204);
    });
  }

  it('a valid command before a malformed one in the same request runs, then 3501', async () => {
    const s = await connectRaw(srv.base);
    const res = await s.emulate(JSON.stringify({ subscribe: { channel: 'ok-first' }, id: 2 }) + '\n{{{');
    assert.equal(res.status, 204);
    assert.deepEqual(await s.nextJSON(), { id: 2, subscribe: {} });
    await s.expectDisconnect(3501);
  });
});
