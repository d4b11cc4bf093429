// The HTTP status codes of /emulation and of the stream POST (PROTOCOL.md §2.2, §2.3).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG } from './lib/server.js';
import { request, postJSON } from './lib/http.js';
import { connectRaw, openStream, closeAllRaw, call } from './lib/raw.js';

const EMULATION_LIMIT = 2048;
// Larger than the emulation limit: the stream limit also bounds each single command (session.c).
const STREAM_LIMIT = 4096;

describe('/emulation and stream POST status codes', () => {
  let srv;
  let emu;

  before(async () => {
    srv = await startServer({
      ...BASE_CONFIG,
      emulation_max_request_body_size: EMULATION_LIMIT,
      http_stream_max_request_body_size: STREAM_LIMIT,
    });
    emu = srv.base + '/emulation';
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('204 with an empty body after the commands ran; the replies go to the stream', async () => {
    const s = await connectRaw(srv.base);
    const res = await s.emulate([{ subscribe: { channel: 'e1' }, id: 2 }]);
    assert.equal(res.status, 204);
    assert.equal(res.body, '');
    assert.deepEqual(await s.nextJSON(), { id: 2, subscribe: {} });
    s.close();
  });

  it('404 for an unknown node, and the commands do not run', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'e404' }, id: 2 });
    const res = await s.emulate([{ publish: { channel: 'e404', data: { lost: true } }, id: 3 }], { node: 'no-such-node' });
    assert.equal(res.status, 404);
    // Proof of absence: the next command's reply is the next frame (no publication, no reply 3).
    assert.deepEqual(await call(s, { publish: { channel: 'e404-other', data: 1 }, id: 4 }), { id: 4, publish: {}, skipped: [] });
    s.close();
  });

  it('204 for an unknown session on this node', async () => {
    const s = await connectRaw(srv.base);
    const res = await postJSON(emu, { session: 'no-such-session', node: s.node, data: '{"subscribe":{"channel":"x"},"id":2}' });
    assert.equal(res.status, 204);
    assert.equal(res.body, '');
    s.close();
  });

  it('204 for the session of a stream the client has closed', async () => {
    const s = await connectRaw(srv.base);
    s.close();
    await s.endPromise;
    const res = await s.emulate([{ subscribe: { channel: 'x' }, id: 2 }]);
    assert.equal(res.status, 204);
  });

  it('400 for a body that is not JSON', async () => {
    const res = await postJSON(emu, 'session=a&node=b');
    assert.equal(res.status, 400);
  });

  it('400 when data is not a string', async () => {
    const s = await connectRaw(srv.base);
    for (const data of [{ subscribe: { channel: 'x' }, id: 2 }, 5, ['{}']]) {
      const res = await postJSON(emu, { session: s.session, node: s.node, data });
      assert.equal(res.status, 400, `data ${JSON.stringify(data)}`);
    }
    // None of it reached the session, which is still usable.
    assert.deepEqual(await call(s, { subscribe: { channel: 'e400' }, id: 2 }), { id: 2, subscribe: {}, skipped: [] });
    s.close();
  });

  it('400 for a JSON body that is not an object', async () => {
    for (const body of ['[]', '"text"', '12', 'null']) {
      const res = await postJSON(emu, body);
      assert.equal(res.status, 400, `body ${body}`);
    }
  });

  it('405 for GET and PUT on /emulation and GET on the stream endpoint', async () => {
    assert.equal((await request(emu, { method: 'GET' })).status, 405);
    const s = await connectRaw(srv.base);
    const put = await request(emu, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ session: s.session, node: s.node, data: '{"subscribe":{"channel":"put"},"id":2}' }),
    });
    assert.equal(put.status, 405);
    assert.equal((await request(srv.base + '/connection/http_stream', { method: 'GET' })).status, 405);
    // The PUT did not subscribe: subscribing now is not "already subscribed".
    assert.deepEqual(await call(s, { subscribe: { channel: 'put' }, id: 3 }), { id: 3, subscribe: {}, skipped: [] });
    s.close();
  });

  it('413 for an emulation body over emulation_max_request_body_size; the command does not run', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'e413' }, id: 2 });
    const cmd = { publish: { channel: 'e413', data: { pad: 'x'.repeat(EMULATION_LIMIT) } }, id: 3 };
    const res = await s.emulate([cmd]);
    assert.equal(res.status, 413);
    // The stream is still alive and the oversized publish never ran: the next two frames are the
    // reply to a small publish and its publication, nothing from command 3.
    assert.equal((await s.emulate([{ publish: { channel: 'e413', data: { small: true } }, id: 4 }])).status, 204);
    const frames = [await s.nextJSON(), await s.nextJSON()];
    assert.deepEqual(frames.find((f) => f.id), { id: 4, publish: {} }, JSON.stringify(frames));
    assert.deepEqual(frames.find((f) => f.push),
      { push: { channel: 'e413', pub: { data: { small: true }, info: { user: '', client: s.client } } } });
    s.close();
  });

  it('a body of exactly emulation_max_request_body_size is accepted', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { subscribe: { channel: 'exact' }, id: 2 });
    const make = (n) => JSON.stringify({
      session: s.session,
      node: s.node,
      data: JSON.stringify({ publish: { channel: 'exact', data: { pad: 'y'.repeat(n) } }, id: 3 }),
    });
    const base = Buffer.byteLength(make(0));
    const body = make(EMULATION_LIMIT - base);
    assert.equal(Buffer.byteLength(body), EMULATION_LIMIT);
    const res = await postJSON(emu, body);
    assert.equal(res.status, 204);
    const r = await s.reply(3);
    assert.deepEqual(r.id, 3);
    assert.deepEqual(r.publish, {});
    s.close();
  });

  it('413 for a stream POST over http_stream_max_request_body_size', async () => {
    const body = JSON.stringify({ connect: { name: 'big', data: { pad: 'z'.repeat(STREAM_LIMIT) } }, id: 1 });
    const s = await openStream(srv.base + '/connection/http_stream', { body });
    assert.equal(s.status, 413);
    s.close();
    // A connect under the limit still works.
    const ok = await connectRaw(srv.base, { connect: { name: 'small', data: { pad: 'z'.repeat(100) } } });
    assert.equal(ok.status, 200);
    ok.close();
  });
});
