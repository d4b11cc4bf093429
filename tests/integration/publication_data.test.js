// Client publications and the JSON subscribers of a channel (issue 10 item 15). A protobuf client could
// publish bytes that are not JSON; at fan-out every JSON subscriber (http_stream, SSE, WebSocket) was
// closed with 3506, which the SDKs take as "do not reconnect", and the publication stayed in history.
// The rule: a client publish of data that is not one JSON value is refused with error 107 "bad request"
// unless the channel's namespace sets publication_data_format = "binary" (Centrifugo's option name);
// the server API stays trusted (its b64data may carry any bytes). README "Differences from Centrifugo".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, stopAll, BASE_CONFIG, API_KEY, STREAMD_BIN, configText } from './lib/server.js';
import { api } from './lib/http.js';
import { connectRaw, closeAllRaw } from './lib/raw.js';
import { cmd, delimited, emulationBody, emulatePb, openPbStream, parse } from './lib/pb.js';

const BINARY = Buffer.from([0xff, 0x00, 0xfe, 0x10]);

let srv;
before(async () => {
  srv = await startServer({ ...BASE_CONFIG, history_size: 10, history_ttl: '60s',
    namespaces: [{ name: 'bin', publication_data_format: 'binary' }] });
});
after(async () => {
  closeAllRaw();
  await stopAll();
});

/** A raw protobuf session: its stream plus send(...commands) through protobuf /emulation. */
async function rawPb(base) {
  const s = await openPbStream(base);
  const result = parse(parse(await s.next())[5][0]);
  const [session, node] = [result[9][0].toString(), result[10][0].toString()];
  s.send = (...commands) => emulatePb(base, emulationBody(node, session, Buffer.concat(commands.map(delimited))));
  return s;
}

/** The next protobuf reply that is not a push, parsed. */
async function nextReply(s) {
  for (;;) {
    const r = parse(await s.next());
    if (!r[4]) return r;
  }
}

/** A protobuf client and a JSON client both subscribed to CHANNEL. */
async function pair(channel) {
  const pb = await rawPb(srv.base);
  const js = await connectRaw(srv.base);
  assert.equal(await pb.send(cmd.subscribe(2, channel)), 204);
  await nextReply(pb);
  await js.emulate([{ id: 2, subscribe: { channel } }]);
  assert.deepEqual((await js.reply(2)).subscribe, {});
  return { pb, js };
}

describe('client publications must be JSON unless the namespace says binary', () => {
  test('non-JSON bytes from a protobuf client ⇒ error 107; the JSON subscriber stays and gets what follows', async () => {
    const { pb, js } = await pair('news');
    assert.equal(await pb.send(cmd.publish(3, 'news', BINARY)), 204);
    const refused = await nextReply(pb);
    assert.deepEqual(refused[1], [3n]);
    assert.deepEqual(parse(refused[2][0]), { 1: [107n], 2: [Buffer.from('bad request')] });
    assert.equal(await pb.send(cmd.publish(4, 'news', '{"after":1}')), 204);
    const published = await nextReply(pb);
    assert.ok(published[8] && !published[2], 'a publish result, no error');
    const frame = await js.nextJSON({ skipPings: true });
    assert.deepEqual(frame.push?.pub?.data, { after: 1 }, JSON.stringify(frame));
    // and history holds only the JSON one: recovery and `history` cannot trip over the refused bytes
    const h = await api(srv.base, 'history', { channel: 'news', limit: -1 }, { key: API_KEY });
    assert.deepEqual(h.json.result.publications.map((p) => p.data), [{ after: 1 }]);
    pb.close();
    js.close();
  });

  test('text that is not one JSON value, and JSON with trailing bytes, are refused too', async () => {
    const pb = await rawPb(srv.base);
    let id = 10;
    for (const data of ['hello', '{"a":1} x', '{"a":', '\u00e9']) {
      assert.equal(await pb.send(cmd.publish(++id, 'news', data)), 204);
      const r = await nextReply(pb);
      assert.deepEqual(parse(r[2][0])[1], [107n], `data ${JSON.stringify(data)}`);
    }
    assert.equal(await pb.send(cmd.publish(++id, 'news', ' [1, 2.5e3, "x", null] ')), 204);
    assert.ok((await nextReply(pb))[8], 'JSON with whitespace around it is published');
    pb.close();
  });

  test('publication_data_format = "binary": any bytes are published; a JSON subscriber gets 3506 (the namespace opted in)', async () => {
    const { pb, js } = await pair('bin:raw');
    assert.equal(await pb.send(cmd.publish(3, 'bin:raw', BINARY)), 204);
    let data = null;
    while (data === null) {
      const r = parse(await pb.next());
      if (r[4]) data = parse(parse(r[4][0])[4][0])[4][0];
    }
    assert.deepEqual(Buffer.from(data), BINARY);
    let frame;
    do frame = await js.nextJSON(); while (!frame.push?.disconnect);
    assert.deepEqual(frame.push.disconnect, { code: 3506, reason: 'inappropriate protocol' });
    await js.expectEnd();
    pb.close();
  });

  test('the server API stays trusted: b64data of any bytes is published', async () => {
    const pb = await rawPb(srv.base);
    assert.equal(await pb.send(cmd.subscribe(2, 'api-bytes')), 204);
    await nextReply(pb);
    const res = await api(srv.base, 'publish', { channel: 'api-bytes', b64data: BINARY.toString('base64') }, { key: API_KEY });
    assert.equal(res.status, 200);
    assert.equal(res.json.error, undefined, JSON.stringify(res.json));
    let data = null;
    while (data === null) {
      const r = parse(await pb.next());
      if (r[4]) data = parse(parse(r[4][0])[4][0])[4][0];
    }
    assert.deepEqual(Buffer.from(data), BINARY);
    pb.close();
  });
});

describe('publication_data_format in the configuration', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'streamd-pdf-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function check(cfg) {
    const file = path.join(dir, `c${Math.random().toString(36).slice(2)}.conf`);
    writeFileSync(file, configText(cfg));
    const r = spawnSync(STREAMD_BIN, ['-t', '-c', file], { encoding: 'utf8', timeout: 20000 });
    return { status: r.status, out: (r.stdout || '') + (r.stderr || '') };
  }

  test('"json" and "binary" are accepted, at top level and in a namespace', () => {
    const r = check({ ...BASE_CONFIG, port: 0, publication_data_format: 'binary',
      namespaces: [{ name: 'js', publication_data_format: 'json' }] });
    assert.equal(r.status, 0, r.out);
  });

  test('anything else names the key and the allowed values, and -t exits 1', () => {
    const r = check({ ...BASE_CONFIG, port: 0, namespaces: [{ name: 'xx', publication_data_format: 'xml' }] });
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /publication_data_format.*"xml" is not one of json, binary/);
  });
});
