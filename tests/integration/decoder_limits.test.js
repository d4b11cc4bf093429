// Hostile client bytes at every decoder entry point (issue 10 item 1): a command whose
// SubscribeRequest.tf nests 15,000 FilterNodes (about 54 KB, under the 64 KiB body limits) used to
// overflow the stack inside protobuf-c (SIGSEGV). Sent as the first POST to /connection/http_stream
// (protobuf, no token), inside a protobuf /emulation body and as a WebSocket centrifuge-protobuf frame,
// it must end only that session with Disconnect 3501 "bad request", and the server must keep serving.
// The JSON codec gets the same nesting as JSON. Limits: PB_GUARD_MAX_DEPTH and friends (server/pb_guard.h).
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { api, withTimeout } from './lib/http.js';
import { connectRaw, openRaw, closeAllRaw } from './lib/raw.js';
import { cmd, delimited, emulationBody, emulatePb, fBytes, fVarint, msg, openPbStream, parse, varint } from './lib/pb.js';

const LEVELS = 15000;

/** Command{id, subscribe{channel, tf = LEVELS FilterNodes nested through `nodes` (field 6)}}, built
 * outside-in from precomputed lengths (wrapping level by level would copy the buffer 15,000 times). */
function deepSubscribe(id, channel, levels = LEVELS) {
  const inner = [0];
  for (let k = 1; k < levels; k++) inner.push(1 + varint(inner[k - 1]).length + inner[k - 1]);
  const headers = [];
  for (let k = levels - 1; k > 0; k--) headers.push(Buffer.from([0x32]), varint(inner[k - 1]));
  const tf = Buffer.concat(headers);
  return msg(fVarint(1, id), fBytes(5, msg(fBytes(1, channel), fBytes(13, tf))));
}

/** The JSON twin: {"id":..,"subscribe":{"channel":..,"tf":{"nodes":[{"nodes":[ ... ]}]}}}; 12 bytes
 * a level, so 5,000 levels fit the 64 KiB body limit. */
function deepSubscribeJSON(id, channel, levels = 5000) {
  const tf = '{"nodes":['.repeat(levels - 1) + '{}' + ']}'.repeat(levels - 1);
  return `{"id":${id},"subscribe":{"channel":"${channel}","tf":${tf}}}`;
}

/** The expected bytes of a Disconnect push (Reply.push=4 ⇒ Push.disconnect=11 ⇒ code=1, reason=2). */
function disconnectPush(code, reason) {
  return msg(fBytes(4, fBytes(11, msg(fVarint(1, code), fBytes(2, reason)))));
}

// Each case gets a server of its own, so that one entry point's crash cannot hide another's.
let srv;
const sockets = [];
beforeEach(async () => {
  srv = await startServer({ ...BASE_CONFIG, websocket_message_size_limit: 65536 });
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  closeAllRaw();
  await stopAll();
});

/** The server still runs and a new protobuf client connects. */
async function assertAlive() {
  assert.equal(srv.exited, null, 'streamd exited');
  const s = await openPbStream(srv.base);
  const reply = parse(await s.next());
  assert.ok(reply[5], 'a connect result');
  s.close();
}

describe('a 15,000-deep protobuf message is refused at every entry point', () => {
  test('the deep command is under the 64 KiB limits', () => {
    const n = delimited(deepSubscribe(1, 'deep')).length;
    assert.ok(n > 50000 && n < 65536, `${n} bytes`);
  });

  test('as the first POST to /connection/http_stream ⇒ 200 and Disconnect 3501; the server lives', async () => {
    const s = await openPbStream(srv.base, delimited(deepSubscribe(1, 'deep')));
    assert.equal(s.status, 200);
    assert.deepEqual(await s.next(), disconnectPush(3501, 'bad request'));
    await s.endPromise;
    await assertAlive();
  });

  test('inside a protobuf /emulation body ⇒ 204 and the session gets Disconnect 3501', async () => {
    const s = await openPbStream(srv.base);
    const result = parse(parse(await s.next())[5][0]);
    const [session, node] = [result[9][0].toString(), result[10][0].toString()];
    const status = await emulatePb(srv.base, emulationBody(node, session, delimited(deepSubscribe(2, 'deep'))));
    assert.equal(status, 204);
    assert.deepEqual(await s.next(), disconnectPush(3501, 'bad request'));
    await s.endPromise;
    await assertAlive();
  });

  test('as a WebSocket centrifuge-protobuf frame ⇒ Close 3501; the server lives', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/connection/websocket`, 'centrifuge-protobuf');
    sockets.push(ws);
    const closed = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
    ws.send(Buffer.concat([delimited(cmd.connect(1)), delimited(deepSubscribe(2, 'deep'))]));
    assert.deepEqual(await withTimeout(closed, 10000, 'the Close frame'), { code: 3501, reason: 'bad request' });
    await assertAlive();
  });

  test('the same nesting as JSON over http_stream ⇒ Disconnect 3501; the server lives', async () => {
    const s = await openRaw(srv.base, deepSubscribeJSON(1, 'deep') + '\n');
    assert.equal(s.status, 200);
    const frame = await s.nextJSON();
    assert.deepEqual(frame.push?.disconnect, { code: 3501, reason: 'bad request' });
    await s.expectEnd();
    await assertAlive();
  });

  test('32 levels below the Command still decode (the subscription works, tf is not used)', async () => {
    const s = await openPbStream(srv.base);
    const result = parse(parse(await s.next())[5][0]);
    const [session, node] = [result[9][0].toString(), result[10][0].toString()];
    const status = await emulatePb(srv.base, emulationBody(node, session, delimited(deepSubscribe(2, 'ok', 31))));
    assert.equal(status, 204);
    assert.deepEqual(parse(await s.next()), { 1: [2n], 6: [Buffer.alloc(0)] });
    s.close();
  });
});

describe('the JSON subscriber of a stream stays unaffected by another client\'s refused command', () => {
  test('a JSON client on the same server keeps its session', async () => {
    const js = await connectRaw(srv.base);
    const s = await openPbStream(srv.base, delimited(deepSubscribe(1, 'deep')));
    assert.deepEqual(await s.next(), disconnectPush(3501, 'bad request'));
    const res = await js.emulate([{ id: 2, subscribe: { channel: 'still-here' } }]);
    assert.equal(res.status, 204);
    assert.deepEqual((await js.reply(2)).subscribe, {});
    js.close();
  });
});

describe('deep JSON where other decoders read client bytes (bounded already: these pass as proof)', () => {
  const deepArray = (levels) => '['.repeat(levels) + ']'.repeat(levels);

  test('JWTs whose header or signed claims nest 20,000 deep (jansson stops at 2048) ⇒ Disconnect 3500', async () => {
    const secret = 'deep-secret';
    const own = await startServer({ http_stream: true, token_hmac_secret_key: secret });
    const b64 = (text) => Buffer.from(text).toString('base64url');
    const sign = (head, body) => `${head}.${body}.${crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
    const deepHeader = sign(b64(`{"alg":"HS256","x":${deepArray(20000)}}`), b64('{"sub":"u1"}'));
    const deepClaims = sign(b64('{"alg":"HS256","typ":"JWT"}'), b64(`{"sub":"u1","x":${deepArray(20000)}}`));
    const fine = sign(b64('{"alg":"HS256","typ":"JWT"}'), b64(`{"sub":"u1","x":${deepArray(100)}}`));
    for (const token of [deepHeader, deepClaims]) {
      const s = await openRaw(own.base, JSON.stringify({ id: 1, connect: { token } }) + '\n');
      const frame = await s.nextJSON();
      assert.deepEqual(frame.push?.disconnect, { code: 3500, reason: 'invalid token' }, JSON.stringify(frame));
    }
    const ok = await openRaw(own.base, JSON.stringify({ id: 1, connect: { token: fine } }) + '\n');
    assert.ok((await ok.nextJSON()).connect, 'the same token with shallow claims connects');
    ok.close();
    assert.equal(own.exited, null);
  });

  test('an API publish whose data nests 30,000 deep ⇒ 400; the server lives', async () => {
    const body = `{"channel":"x","data":${deepArray(30000)}}`;
    const res = await api(srv.base, 'publish', body, { key: API_KEY });
    assert.equal(res.status, 400);
    await assertAlive();
  });
});

