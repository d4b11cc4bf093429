// Token checks of issue 13 §3: ES256/384/512 tokens against token_ecdsa_public_key, token_audience and
// token_issuer (a token that does not match is an invalid token: Disconnect 3500 on connect, error 103
// on a subscription token), and token_jwks_public_endpoint served by a Node http server of this file,
// with key rotation (a token signed by a key that appears later is accepted: the connect waits for the
// refresh its unknown kid asks for). Tokens are signed with Node's crypto.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { newClient, connectedClient, once, closeAllClients, SDK_TIMEOUT_MS } from './lib/sdk.js';
import { now } from './lib/jwt.js';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

const DIGEST = { RS256: 'sha256', RS384: 'sha384', ES256: 'sha256', ES384: 'sha384', ES512: 'sha512' };

/** A JWT over CLAIMS signed with PRIVATE_KEY (a KeyObject) as ALG, with KID in the header if given. */
function sign(claims, privateKey, alg, kid) {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT', ...(kid ? { kid } : {}) }));
  const body = b64url(JSON.stringify(claims));
  const input = Buffer.from(`${head}.${body}`);
  // JWS carries ECDSA signatures as r || s (ieee-p1363), not DER
  const opts = alg.startsWith('ES') ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey;
  return `${head}.${body}.${b64url(crypto.sign(DIGEST[alg], input, opts))}`;
}

const ecKeys = (namedCurve) => crypto.generateKeyPairSync('ec', { namedCurve });
const pem = (publicKey) => publicKey.export({ type: 'spki', format: 'pem' });

/** Resolves with the SDK's disconnect context for a client connecting with TOKEN. */
async function refused(base, token) {
  const c = newClient(base, { token });
  const d = once(c, 'disconnected');
  c.connect();
  return d;
}

/** Writes TEXT as the server's config, sends SIGHUP and resolves with what it logged about it. */
async function reload(srv, text) {
  writeFileSync(srv.configFile, text);
  const from = srv.stderr.length;
  srv.child.kill('SIGHUP');
  for (const until = Date.now() + 10000; Date.now() < until;) {
    const tail = srv.stderr.slice(from);
    if (/configuration reloaded|reload failed[^\n]*\n/.test(tail)) return tail;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no reload line; log:\n${srv.stderr.slice(from)}`);
}

after(async () => {
  closeAllClients();
  await stopAll();
});

describe('ES256 tokens, token_audience and token_issuer', () => {
  let srv;
  const p256 = ecKeys('prime256v1');
  const good = (sub, extra = {}) =>
    sign({ sub, exp: now() + 3600, aud: 'chat-app', iss: 'https://issuer.test', ...extra }, p256.privateKey, 'ES256');

  before(async () => {
    srv = await startServer({
      http_stream: true, api_key: API_KEY, token_ecdsa_public_key: pem(p256.publicKey),
      token_audience: 'chat-app', token_issuer: 'https://issuer.test',
    });
  });

  test('the SDK connects with an ES256 token whose aud and iss match', async () => {
    const c = await connectedClient(srv.base, { token: good('es-user') });
    assert.equal(c.state, 'connected');
    c.disconnect();
  });

  test('aud as an array that names the audience is accepted', async () => {
    const c = await connectedClient(srv.base, { token: good('array-user', { aud: ['other', 'chat-app'] }) });
    assert.equal(c.state, 'connected');
    c.disconnect();
  });

  test('a wrong or missing aud ⇒ 3500 invalid token', async () => {
    for (const aud of ['other-app', ['a', 'b'], undefined]) {
      const ctx = await refused(srv.base, good('aud-user', { aud }));
      assert.equal(ctx.code, 3500, `aud ${JSON.stringify(aud)}`);
      assert.equal(ctx.reason, 'invalid token');
    }
  });

  test('a wrong or missing iss ⇒ 3500 invalid token', async () => {
    for (const iss of ['https://evil.test', undefined]) {
      const ctx = await refused(srv.base, good('iss-user', { iss }));
      assert.equal(ctx.code, 3500, `iss ${JSON.stringify(iss)}`);
    }
  });

  test('an ES256 token signed by another key, or ES384 against a P-256 key ⇒ 3500', async () => {
    const other = ecKeys('prime256v1');
    const claims = { sub: 'x', exp: now() + 60, aud: 'chat-app', iss: 'https://issuer.test' };
    assert.equal((await refused(srv.base, sign(claims, other.privateKey, 'ES256'))).code, 3500);
    const p384 = ecKeys('secp384r1');
    assert.equal((await refused(srv.base, sign(claims, p384.privateKey, 'ES384'))).code, 3500);
  });

  test('a subscription token with a wrong aud ⇒ 103; with the right one ⇒ subscribed', async () => {
    const c = await connectedClient(srv.base, { token: good('sub-user') });
    const bad = c.newSubscription('$private', {
      getToken: async (ctx) => good('sub-user', { channel: ctx.channel, aud: 'other-app' }),
    });
    const unsub = once(bad, 'unsubscribed');
    bad.subscribe();
    assert.equal((await unsub).code, 103);
    c.removeSubscription(bad);
    const ok = c.newSubscription('$private', { getToken: async (ctx) => good('sub-user', { channel: ctx.channel }) });
    const subscribed = once(ok, 'subscribed');
    ok.subscribe();
    await subscribed;
    c.disconnect();
  });
});

describe('token_jwks_public_endpoint', () => {
  let srv;
  let jwksServer;
  let keys = []; // what the endpoint serves: JWKs with kid
  let fetches = 0;
  let hold = null; // a promise the endpoint waits for before answering, when set
  const rsa1 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec1 = ecKeys('prime256v1');
  const jwk = (publicKey, kid, extra = {}) => ({ ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', ...extra });
  const claims = (sub, extra = {}) => ({ sub, exp: now() + 3600, ...extra });

  before(async () => {
    keys = [jwk(rsa1.publicKey, 'rsa-1', { alg: 'RS256' }), jwk(ec1.publicKey, 'ec-1')];
    jwksServer = http.createServer(async (req, res) => {
      fetches++;
      if (hold) await hold;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
    });
    await new Promise((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${jwksServer.address().port}/.well-known/jwks.json`;
    srv = await startServer({ http_stream: true, api_key: API_KEY, token_jwks_public_endpoint: url,
      namespaces: [{ name: 'room', allow_subscribe_for_client: true, allow_publish_for_client: true }] });
  });

  after(async () => {
    jwksServer.closeAllConnections();
    await new Promise((resolve) => jwksServer.close(resolve));
  });

  test('RS256 and ES256 tokens verify with the JWKS keys named by their kid', async () => {
    const a = await connectedClient(srv.base, { token: sign(claims('jwks-rsa'), rsa1.privateKey, 'RS256', 'rsa-1') });
    const b = await connectedClient(srv.base, { token: sign(claims('jwks-ec'), ec1.privateKey, 'ES256', 'ec-1') });
    assert.equal(a.state, 'connected');
    assert.equal(b.state, 'connected');
    a.disconnect();
    b.disconnect();
  });

  test('a token without kid, with a kid of the wrong key type, or an alg the JWK does not allow ⇒ 3500', async () => {
    assert.equal((await refused(srv.base, sign(claims('no-kid'), rsa1.privateKey, 'RS256'))).code, 3500);
    assert.equal((await refused(srv.base, sign(claims('wrong-type'), ec1.privateKey, 'ES256', 'rsa-1'))).code, 3500);
    // rsa-1's JWK says alg RS256: the same key under RS384 is refused
    assert.equal((await refused(srv.base, sign(claims('wrong-alg'), rsa1.privateKey, 'RS384', 'rsa-1'))).code, 3500);
  });

  test('key rotation: a token signed by a key that appears in the set later is accepted', async () => {
    const rsa2 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    keys = [jwk(rsa2.publicKey, 'rsa-2', { alg: 'RS256' }), jwk(ec1.publicKey, 'ec-1')];
    const before = fetches;
    const c = await connectedClient(srv.base, { token: sign(claims('rotated'), rsa2.privateKey, 'RS256', 'rsa-2') });
    assert.equal(c.state, 'connected');
    assert.ok(fetches > before, 'the unknown kid made streamd fetch the set again');
    // and a subscription token signed by a key newer still
    const ec2 = ecKeys('prime256v1');
    keys = [...keys, jwk(ec2.publicKey, 'ec-2')];
    const sub = c.newSubscription('$room:vip', {
      getToken: async (ctx) => sign(claims('rotated', { channel: ctx.channel }), ec2.privateKey, 'ES256', 'ec-2'),
    });
    const subscribed = once(sub, 'subscribed', SDK_TIMEOUT_MS);
    sub.subscribe();
    await subscribed;
    c.disconnect();
  });

  test('a kid the set does not have even after a refresh ⇒ 3500', async () => {
    const stranger = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ctx = await refused(srv.base, sign(claims('stranger'), stranger.privateKey, 'RS256', 'nobody'));
    assert.equal(ctx.code, 3500);
  });

  test('SIGHUP with a JWKS endpoint reloads, and the new configuration’s cache fetches the set itself', async () => {
    const before = fetches;
    assert.match(await reload(srv, srv.configText), /configuration reloaded/);
    const c = await connectedClient(srv.base, { token: sign(claims('after-reload'), ec1.privateKey, 'ES256', 'ec-1') });
    assert.equal(c.state, 'connected');
    assert.ok(fetches > before, 'the reloaded configuration fetched the set itself');
    c.disconnect();
  });

  test('while a connect waits for a slow JWKS endpoint, the server keeps serving other clients', async () => {
    const a = await connectedClient(srv.base, { token: sign(claims('waiting-a'), ec1.privateKey, 'ES256', 'ec-1') });
    const sub = a.newSubscription('room:live');
    const subscribed = once(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
    let release;
    hold = new Promise((resolve) => { release = resolve; });
    const ec3 = ecKeys('prime256v1');
    keys = [...keys, jwk(ec3.publicKey, 'ec-3')];
    const fetchesBefore = fetches;
    const late = newClient(srv.base, { token: sign(claims('late'), ec3.privateKey, 'ES256', 'ec-3') });
    const lateConnected = once(late, 'connected', SDK_TIMEOUT_MS + 5000);
    late.connect();
    while (fetches === fetchesBefore) await new Promise((r) => setTimeout(r, 20)); // streamd is fetching
    // the fetch is held: a publication still reaches the connected client, and its own publish works
    const pub = once(sub, 'publication');
    await sub.publish({ during: 'fetch' });
    assert.deepEqual((await pub).data, { during: 'fetch' });
    assert.equal(late.state, 'connecting', 'the late client is still waiting for the keys');
    hold = null;
    release();
    await lateConnected;
    a.disconnect();
    late.disconnect();
  });
});

describe('reloading the token keys', () => {
  test('SIGHUP applies a new token_audience; a bad ECDSA key or JWKS URL fails the reload and names the key', async () => {
    const key = ecKeys('prime256v1');
    const srv = await startServer({ http_stream: true, token_ecdsa_public_key: pem(key.publicKey), token_audience: 'one' });
    const tok = (aud) => sign({ sub: 'r', exp: now() + 3600, aud }, key.privateKey, 'ES256');
    (await connectedClient(srv.base, { token: tok('one') })).disconnect();
    const two = srv.configText.replace('token_audience = "one";', 'token_audience = "two";');
    assert.match(await reload(srv, two), /configuration reloaded/);
    assert.equal((await refused(srv.base, tok('one'))).code, 3500);
    (await connectedClient(srv.base, { token: tok('two') })).disconnect();
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const badKey = two.replace(/token_ecdsa_public_key = "[^"]*";/, `token_ecdsa_public_key = "${pem(rsa.publicKey)}";`);
    assert.match(await reload(srv, badKey), /reload failed.*token_ecdsa_public_key/);
    const badUrl = `${two}token_jwks_public_endpoint = "ftp://keys.example/jwks";\n`;
    assert.match(await reload(srv, badUrl), /reload failed.*token_jwks_public_endpoint/);
    // the running keys are unchanged
    (await connectedClient(srv.base, { token: tok('two') })).disconnect();
    await srv.stop();
  });
});
