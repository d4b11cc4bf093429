// Session ids stay out of the log at info level (issue 10 item 14): a session id is what lets a caller
// send commands into a connection through /emulation, so a log reader must not learn it. Lines about a
// connection name its client id; the session id appears only at debug level.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll } from './lib/server.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';
import { hsToken, now } from './lib/jwt.js';

const SECRET = 'log-ids-secret';

// Connects, then does what logs a line about the connection: a token channel in an unknown namespace
// (warn), a rejected subscription token (info), an undecodable command (info, then 3501).
async function noisyConnection(srv) {
  const token = hsToken({ sub: 'u1', exp: now() + 600, channels: ['nope:x'] }, SECRET);
  const s = await connectRaw(srv.base, { connect: { token, name: 'raw' } });
  assert.ok(s.client && s.session);
  const r = await call(s, { subscribe: { channel: 'chan', token: 'not.a.token' }, id: 2 });
  assert.equal(r.error?.code, 103);
  const res = await s.emulate('this is not a command');
  assert.equal(res.status, 204);
  await s.expectDisconnect(3501);
  return s;
}

// The log so far, after a moment for the last lines to be written.
async function logOf(srv) {
  await new Promise((r) => setTimeout(r, 200));
  return srv.stderr;
}

describe('ids in the log', () => {
  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('at info level the log names the client id and never the session id', async () => {
    const srv = await startServer({ http_stream: true, token_hmac_secret_key: SECRET, log_level: 'info' });
    const s = await noisyConnection(srv);
    const log = await logOf(srv);
    assert.match(log, /undecodable command/);
    assert.ok(log.includes(s.client), `the client id ${s.client} is in the log:\n${log}`);
    assert.ok(!log.includes(s.session), `the session id ${s.session} must not be in the log:\n${log}`);
    await srv.stop();
  });

  it('at debug level the session id is there for whoever debugs', async () => {
    const srv = await startServer({ http_stream: true, token_hmac_secret_key: SECRET, log_level: 'debug' });
    const s = await noisyConnection(srv);
    const log = await logOf(srv);
    assert.ok(log.includes(s.session), `the session id ${s.session} is in the debug log:\n${log}`);
    await srv.stop();
  });
});
