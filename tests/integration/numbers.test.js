// Numbers from tokens (issue 10 item 13): `exp` and `expire_at` claims at the edges of what JSON and
// int64 hold. Whatever a backend (or an attacker with a leaked key) signs, the server neither wraps nor
// overflows: a far-future expiry means "expires, ttl clamped to the largest uint32" in every reply that
// carries a ttl (connect, refresh, subscribe, sub_refresh), the connection is not dropped early, and
// claims that are not numbers, or out of int64, are refused as invalid tokens.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, stopAll } from './lib/server.js';
import { connectRaw, openRaw, closeAllRaw, call } from './lib/raw.js';
import { api } from './lib/http.js';
import { now } from './lib/jwt.js';

const SECRET = 'numbers-secret';
const API_KEY = 'numbers-api-key';
const UINT32_MAX = 4294967295;
const INT64_MAX = '9223372036854775807';

// An HS256 token whose payload is CLAIMS_TEXT verbatim: JSON.stringify cannot write 2^63-1 exactly.
function rawToken(claimsText) {
  const b64 = (x) => Buffer.from(x).toString('base64url');
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64(claimsText);
  const sig = crypto.createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

const connectWith = (base, claimsText) => connectRaw(base, { connect: { token: rawToken(claimsText), name: 'raw' } });

// No push (no disconnect) within MS, and the stream is still open.
async function staysOpen(s, ms) {
  await assert.rejects(s.waitFor((m) => !!m.push, ms), /within \d+ ms/);
  assert.equal(s.ended, false, 'the stream is still open');
}

async function firstFrame(base, claimsText) {
  const s = await openRaw(base, JSON.stringify({ connect: { token: rawToken(claimsText), name: 'raw' }, id: 1 }));
  assert.equal(s.status, 200);
  return { s, frame: await s.nextJSON() };
}

describe('numbers in token claims', () => {
  let srv;

  before(async () => {
    srv = await startServer({
      http_stream: true,
      token_hmac_secret_key: SECRET,
      api_key: API_KEY,
      allow_subscribe_for_client: true,
      ping_interval: '25s',
      pong_timeout: '8s',
      client_expired_close_delay: '1s',
    });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  for (const [what, exp] of [['2^63-1', INT64_MAX], ['2^53', '9007199254740992'], ['1e18', '1000000000000000000'],
    ['a float near 2^63', '9.2e18']]) {
    it(`exp = ${what}: the connect reply says expires with ttl clamped to 2^32-1, and the connection stays`, async () => {
      const s = await connectWith(srv.base, `{"sub":"u1","exp":${exp}}`);
      assert.equal(s.connectReply.expires, true);
      assert.equal(s.connectReply.ttl, UINT32_MAX);
      // An expiry check that wrapped would disconnect (3005) about a second after connect.
      await staysOpen(s, 2500);
      s.close();
    });
  }

  it('expire_at = 2^63-1 overrides exp the same way', async () => {
    const s = await connectWith(srv.base, `{"sub":"u1","exp":${now() + 60},"expire_at":${INT64_MAX}}`);
    assert.equal(s.connectReply.expires, true);
    assert.equal(s.connectReply.ttl, UINT32_MAX);
    s.close();
  });

  it('a near expiry gives its real ttl (a fractional exp is truncated)', async () => {
    const s = await connectWith(srv.base, `{"sub":"u1","exp":${now() + 3600}.75}`);
    assert.equal(s.connectReply.expires, true);
    assert.ok(s.connectReply.ttl >= 3598 && s.connectReply.ttl <= 3600, `ttl ${s.connectReply.ttl}`);
    s.close();
  });

  for (const [what, exp] of [['0', '0'], ['negative', '-1'], ['-2^63', '-9223372036854775808']]) {
    it(`exp = ${what}: error 109 token expired`, async () => {
      const { s, frame } = await firstFrame(srv.base, `{"sub":"u1","exp":${exp}}`);
      assert.deepEqual(frame, { id: 1, error: { code: 109, message: 'token expired' } });
      s.close();
    });
  }

  for (const [what, exp] of [['a string', '"9999999999"'], ['2^63 (beyond int64)', '9223372036854775808'],
    ['1e300', '1e300'], ['true', 'true'], ['an object', '{}']]) {
    it(`exp = ${what}: Disconnect 3500 invalid token`, async () => {
      const { s, frame } = await firstFrame(srv.base, `{"sub":"u1","exp":${exp}}`);
      assert.equal(frame.push?.disconnect?.code, 3500, JSON.stringify(frame));
      s.close();
    });
  }

  it('refresh with exp = 2^63-1: ttl clamped', async () => {
    const s = await connectWith(srv.base, `{"sub":"u1","exp":${now() + 60}}`);
    const r = await call(s, { refresh: { token: rawToken(`{"sub":"u1","exp":${INT64_MAX}}`) }, id: 2 });
    assert.deepEqual(r.refresh, { expires: true, ttl: UINT32_MAX });
    await staysOpen(s, 2500);
    s.close();
  });

  it('the server API refresh with expire_at = 2^63-1 keeps the connection', async () => {
    const s = await connectWith(srv.base, `{"sub":"u1","exp":${now() + 60}}`);
    const r = await api(srv.base, 'refresh', `{"client":"${s.client}","expire_at":${INT64_MAX}}`, { key: API_KEY });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { result: {} });
    await staysOpen(s, 2500);
    s.close();
  });

  it('subscribe and sub_refresh with a subscription token exp = 2^63-1: ttl clamped', async () => {
    const s = await connectWith(srv.base, `{"sub":"u1"}`);
    const sub = (exp) => rawToken(`{"sub":"u1","channel":"big","exp":${exp}}`);
    const r = await call(s, { subscribe: { channel: 'big', token: sub(INT64_MAX) }, id: 2 });
    assert.equal(r.subscribe.expires, true);
    assert.equal(r.subscribe.ttl, UINT32_MAX);
    const rr = await call(s, { sub_refresh: { channel: 'big', token: sub('9007199254740992') }, id: 3 });
    assert.deepEqual(rr.sub_refresh, { expires: true, ttl: UINT32_MAX });
    s.close();
  });
});
