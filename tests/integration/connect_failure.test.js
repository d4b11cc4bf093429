// A connect reply the server cannot send (issue 10 item 14): the client must not wait for it forever.
// A connection token whose server-side subscription carries binary `b64data` makes a connect reply that
// JSON cannot carry (the protobuf protocol can): the JSON client gets Disconnect 3506 "inappropriate
// protocol" at once and the stream ends, instead of a stream with pings and no connect reply.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll } from './lib/server.js';
import { openRaw, closeAllRaw } from './lib/raw.js';
import { hsToken, now } from './lib/jwt.js';

const SECRET = 'connect-failure-secret';

describe('connect reply that cannot be encoded', () => {
  let srv;

  before(async () => {
    srv = await startServer({ http_stream: true, token_hmac_secret_key: SECRET, ping_interval: '2s', pong_timeout: '1s' });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  const connectBody = (subs) => JSON.stringify({
    connect: { token: hsToken({ sub: 'u1', exp: now() + 600, subs }, SECRET), name: 'raw' },
    id: 1,
  });

  it('a JSON client gets Disconnect 3506 and the end of the stream, not silence', async () => {
    const binary = Buffer.from([0x00, 0xff, 0x01, 0x80]).toString('base64');
    const s = await openRaw(srv.base, connectBody({ bin: { b64data: binary } }));
    assert.equal(s.status, 200);
    const frame = await s.nextJSON(3000);
    assert.deepEqual(frame, { push: { disconnect: { code: 3506, reason: 'inappropriate protocol' } } });
    assert.deepEqual(await s.expectEnd(3000), [], 'nothing follows the disconnect');
  });

  it('the same token with JSON data connects and carries the data', async () => {
    const json = Buffer.from('{"ok":true}').toString('base64');
    const s = await openRaw(srv.base, connectBody({ bin: { b64data: json } }));
    const frame = await s.nextJSON(3000);
    assert.equal(frame.id, 1);
    assert.deepEqual(frame.connect.subs.bin.data, { ok: true });
    s.close();
  });
});
