// The Protobuf protocol end to end (PROTOCOL.md §2.2, §2.3, §3, Appendix A): the SDK's protobuf build
// against streamd, raw binary frames, crossing codecs on one channel, and malformed binary input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Centrifuge as CentrifugePb } from 'centrifuge/build/protobuf';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { connectRaw } from './lib/raw.js';
import { once, collectPublications, SDK_TIMEOUT_MS } from './lib/sdk.js';
import { cmd, delimited, emulationBody, emulatePb, fBytes, fVarint, msg, openPbStream, parse } from './lib/pb.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const pbClients = [];

function pbClient(base) {
  const c = new CentrifugePb([{ transport: 'http_stream', endpoint: base + '/connection/http_stream' }], {
    emulationEndpoint: base + '/emulation',
    timeout: SDK_TIMEOUT_MS,
    minReconnectDelay: 200,
    maxReconnectDelay: 2000,
  });
  c.errors = [];
  c.on('error', (e) => c.errors.push(e));
  pbClients.push(c);
  return c;
}

async function connectedPb(base) {
  const c = pbClient(base);
  const connected = once(c, 'connected', SDK_TIMEOUT_MS + 5000);
  c.connect();
  c.ctx = await connected;
  return c;
}

async function subscribePb(c, channel) {
  const sub = c.newSubscription(channel);
  collectPublications(sub);
  const subscribed = once(sub, 'subscribed', SDK_TIMEOUT_MS + 5000);
  sub.subscribe();
  await subscribed;
  return sub;
}

/** A raw protobuf session: its stream plus its session and node ids from the connect reply. */
async function rawPb(base) {
  const s = await openPbStream(base);
  const reply = parse(await s.next());
  const result = parse(reply[5][0]);
  s.session = result[9][0].toString();
  s.node = result[10][0].toString();
  s.send = (...commands) => emulatePb(base, emulationBody(s.node, s.session, Buffer.concat(commands.map(delimited))));
  s.sendRaw = (data) => emulatePb(base, emulationBody(s.node, s.session, data));
  return s;
}

/** The expected bytes of a Disconnect push (Reply.push=4 ⇒ Push.disconnect=11 ⇒ code=1, reason=2). */
function disconnectPush(code, reason) {
  return msg(fBytes(4, fBytes(11, msg(fVarint(1, code), fBytes(2, reason)))));
}

async function nextPush(s) {
  for (;;) {
    const r = parse(await s.next());
    if (r[4]) return parse(r[4][0]);
  }
}

after(async () => {
  for (const c of pbClients) c.disconnect();
  await stopAll();
});

describe('protobuf SDK build (centrifuge/build/protobuf 5.8.0)', () => {
  let srv;
  before(async () => {
    // a 60 KB publication needs room for one command of that size (body and command limits)
    srv = await startServer({ ...BASE_CONFIG, ping_interval: '2s', pong_timeout: '1s',
      http_stream_max_request_body_size: 131072, emulation_max_request_body_size: 131072 });
  });

  test('connects, subscribes, publishes and receives its own and others\' publications', async () => {
    const a = await connectedPb(srv.base);
    const b = await connectedPb(srv.base);
    assert.equal(a.ctx.transport, 'http_stream');
    assert.match(a.ctx.client, /^[0-9a-f-]{36}$/);
    const subA = await subscribePb(a, 'news');
    const subB = await subscribePb(b, 'news');
    await subA.publish(enc.encode('{"text":"from a"}'));
    const [pa, pb] = await Promise.all([subA.nextPub(), subB.nextPub()]);
    assert.equal(dec.decode(pa.data), '{"text":"from a"}');
    assert.equal(dec.decode(pb.data), '{"text":"from a"}');
    assert.equal(pb.info.client, a.ctx.client);
  });

  test('unsubscribe stops delivery', async () => {
    const a = await connectedPb(srv.base);
    const sub = await subscribePb(a, 'unsub-pb');
    const unsubscribed = once(sub, 'unsubscribed');
    sub.unsubscribe();
    await unsubscribed;
    const res = await fetch(srv.base + '/api/publish', {
      method: 'POST', headers: { 'X-API-Key': API_KEY }, body: JSON.stringify({ channel: 'unsub-pb', data: { n: 1 } }),
    });
    assert.equal(res.status, 200);
    const watcher = await connectedPb(srv.base);
    const control = await subscribePb(watcher, 'unsub-pb');
    await fetch(srv.base + '/api/publish', {
      method: 'POST', headers: { 'X-API-Key': API_KEY }, body: JSON.stringify({ channel: 'unsub-pb', data: { n: 2 } }),
    });
    assert.equal(dec.decode((await control.nextPub()).data), '{"n":2}');
    assert.equal(sub.pubs.length, 0);
  });

  test('a 60 KB publication arrives intact (the reply spans several reads)', async () => {
    const a = await connectedPb(srv.base);
    const sub = await subscribePb(a, 'big-pb');
    let blob = '';
    while (enc.encode(blob).length < 60 * 1024 - 20) blob += 'é日本🙂 ';
    const payload = enc.encode(JSON.stringify({ blob }));
    assert.ok(payload.length >= 60 * 1024 - 20 && payload.length <= 60 * 1024 + 20);
    await sub.publish(payload);
    const got = await sub.nextPub();
    assert.equal(got.data.length, payload.length);
    assert.deepEqual(Buffer.from(got.data), Buffer.from(payload));
  });

  test('pings are answered: the client stays connected over several ping intervals', async () => {
    const a = await connectedPb(srv.base);
    let disconnected = null;
    a.on('disconnected', (ctx) => { disconnected = ctx; });
    a.on('connecting', (ctx) => { disconnected = ctx; });
    await new Promise((r) => setTimeout(r, 5500));
    assert.equal(disconnected, null);
    assert.equal(a.state, 'connected');
  });
});

describe('protobuf server disconnect', () => {
  test('SIGTERM ⇒ the protobuf client is told 3001 shutdown and the server exits 0', async () => {
    const srv = await startServer(BASE_CONFIG);
    const a = await connectedPb(srv.base);
    const connecting = once(a, 'connecting');
    const stopped = srv.stop('SIGTERM');
    const ctx = await connecting;
    assert.equal(ctx.code, 3001);
    assert.equal(ctx.reason, 'shutdown');
    assert.equal((await stopped).code, 0);
    a.disconnect();
  });
});

describe('raw protobuf frames', () => {
  let srv;
  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, ping_interval: '1s', pong_timeout: '900ms',
      http_stream_max_request_body_size: 4096, namespaces: [{ name: 'bin', publication_data_format: 'binary' }] });
  });

  test('the connect reply carries client, session, node, ping and pong; pings are the byte 0x00', async () => {
    const s = await openPbStream(srv.base);
    assert.equal(s.status, 200);
    assert.equal(s.headers['content-type'], 'application/octet-stream');
    const reply = parse(await s.next());
    assert.equal(reply[1][0], 1n);
    const result = parse(reply[5][0]);
    for (const f of [1, 9, 10]) assert.match(result[f][0].toString(), /^[0-9a-f-]{36}$/, `field ${f}`);
    assert.equal(result[7][0], 1n); // ping interval in seconds
    assert.equal(result[8][0], 1n); // pong: true
    const ping = await s.next(3000);
    assert.equal(ping.length, 0);
    // no pong ⇒ Disconnect 3012
    const last = await s.next(3000);
    assert.deepEqual(last, disconnectPush(3012, 'no pong'));
    await s.endPromise;
    // the raw bytes on the wire: uvarint length 0 for the ping
    assert.ok(Buffer.concat(s.chunks).includes(Buffer.from([0x00])));
  });

  test('subscribe, publish and the Appendix A reply bytes', async () => {
    const s = await rawPb(srv.base);
    assert.equal(await s.send(cmd.subscribe(2, 'news')), 204);
    assert.deepEqual(await s.next(), Buffer.from('08023200', 'hex')); // {id:2, subscribe:{}}
    assert.equal(await s.send(cmd.publish(3, 'news', '{"text":"hello"}')), 204);
    const got = [parse(await s.next()), parse(await s.next())];
    const publishReply = got.find((r) => r[1]);
    assert.deepEqual(publishReply, { 1: [3n], 8: [Buffer.alloc(0)] });
    const push = parse(got.find((r) => r[4])[4][0]);
    assert.equal(push[2][0].toString(), 'news');
    assert.equal(parse(push[4][0])[4][0].toString(), '{"text":"hello"}');
    s.close();
  });

  test('JSON and protobuf subscribers on one channel both get publications from either side', async () => {
    const pb = await rawPb(srv.base);
    const js = await connectRaw(srv.base);
    await pb.send(cmd.subscribe(2, 'mix'));
    await pb.next();
    await js.emulate([{ id: 2, subscribe: { channel: 'mix' } }]);
    assert.deepEqual(await js.nextJSON(), { id: 2, subscribe: {} });

    await js.emulate([{ id: 3, publish: { channel: 'mix', data: { from: 'json', n: 1 } } }]);
    const fromJson = await nextPush(pb);
    assert.equal(parse(fromJson[4][0])[4][0].toString(), '{"from":"json","n":1}');

    await pb.send(cmd.publish(3, 'mix', '{"from":"pb"}'));
    const fromPb = await nextPush(pb);
    assert.equal(parse(fromPb[4][0])[4][0].toString(), '{"from":"pb"}');
    const jsonPubs = [];
    while (jsonPubs.length < 2) {
      const f = await js.nextJSON();
      if (f.push?.pub) jsonPubs.push(f.push.pub.data);
    }
    assert.deepEqual(jsonPubs, [{ from: 'json', n: 1 }, { from: 'pb' }]);
    pb.close();
  });

  test('in a namespace with publication_data_format = "binary", binary data reaches protobuf subscribers; a JSON subscriber gets 3506', async () => {
    const pb = await rawPb(srv.base);
    const js = await connectRaw(srv.base);
    await pb.send(cmd.subscribe(2, 'bin:x'));
    await pb.next();
    await js.emulate([{ id: 2, subscribe: { channel: 'bin:x' } }]);
    await js.nextJSON();
    const binary = Buffer.from([0xff, 0x00, 0xfe, 0x10]);
    await pb.send(cmd.publish(3, 'bin:x', binary));
    let data = null;
    while (data === null) {
      const r = parse(await pb.next());
      if (r[4]) data = parse(parse(r[4][0])[4][0])[4][0];
    }
    assert.deepEqual(Buffer.from(data), binary);
    let frame;
    do frame = await js.nextJSON(); while (!frame.push?.disconnect);
    assert.deepEqual(frame.push.disconnect, { code: 3506, reason: 'inappropriate protocol' });
    await js.expectEnd();
    pb.close();
  });

  const malformed = [
    ['a truncated varint', Buffer.from([0x80])],
    ['a length prefix over http_stream_max_request_body_size', Buffer.concat([Buffer.from([0x90, 0x4e]), Buffer.alloc(10)])],
    ['a body that ends inside a message', Buffer.from([0x0a, 0x08, 0x02])],
    ['a wrong wire type (Command.id sent length-delimited)', delimited(Buffer.from([0x0a, 0x01, 0x05]))],
  ];
  for (const [name, data] of malformed) {
    test(`${name} in emulation data ⇒ Disconnect 3501, the POST still 204`, async () => {
      const s = await rawPb(srv.base);
      assert.equal(await s.sendRaw(data), 204);
      assert.deepEqual(await s.next(), disconnectPush(3501, 'bad request'));
      await s.endPromise;
    });
  }

  test('unknown fields are ignored (proto3)', async () => {
    const s = await rawPb(srv.base);
    const withUnknown = Buffer.concat([cmd.subscribe(2, 'unknown-fields'), fVarint(99, 7), fBytes(100, 'x')]);
    assert.equal(await s.send(withUnknown), 204);
    assert.deepEqual(await s.next(), Buffer.from('08023200', 'hex'));
    s.close();
  });

  test('an undecodable EmulationRequest ⇒ 400; unknown node ⇒ 404; unknown session ⇒ 204', async () => {
    const s = await rawPb(srv.base);
    assert.equal(await emulatePb(srv.base, Buffer.from([0x0a, 0x50, 0x01])), 400);
    assert.equal(await emulatePb(srv.base, emulationBody('other-node', s.session, Buffer.from([0x00]))), 404);
    assert.equal(await emulatePb(srv.base, emulationBody(s.node, 'no-such-session', Buffer.from([0x00]))), 204);
    s.close();
  });

  test('a stream POST whose body is a truncated varint ⇒ 200 and Disconnect 3501', async () => {
    const s = await openPbStream(srv.base, Buffer.from([0xff]));
    assert.equal(s.status, 200);
    assert.deepEqual(await s.next(), disconnectPush(3501, 'bad request'));
    await s.endPromise;
  });
});
