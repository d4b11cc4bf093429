// delta_bandwidth: the bytes a subscriber receives for a stream of similar publications, with and
// without fossil delta compression (namespace allowed_delta_types = ["fossil"], publish API delta: true),
// on JSON http_stream and on protobuf http_stream. Starts its own streamd (STREAMD_BIN, as the
// integration tests do), subscribes four raw streams to one channel (JSON and protobuf, each with and
// without delta), publishes N versions of a document through the server API, each differing from the
// one before in a few fields, and counts the stream bytes (HTTP body, after de-chunking) each
// subscriber got for them. Prints one table (Markdown) and, with --json FILE, the figures.
//
//   STREAMD_BIN=build/server/streamd node tests/bench/delta_bandwidth.mjs [--count 500] [--fields 60]
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { startServer, stopAll, API_KEY } from '../integration/lib/server.js';
import { api } from '../integration/lib/http.js';
import { connectRaw, call, closeAllRaw } from '../integration/lib/raw.js';
import { delimited, emulatePb, emulationBody, fBytes, fVarint, msg, openPbStream, parse } from '../integration/lib/pb.js';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const COUNT = Number(opt('count', 500));
const FIELDS = Number(opt('fields', 60));
const JSON_OUT = opt('json', null);

// Versions of one document: FIELDS fields of short words and numbers, 1 to 3 of them changed each time.
function documents(count, fields) {
  let a = 12345;
  const r = () => ((a = (Math.imul(a, 1103515245) + 12345) >>> 0) / 4294967296);
  const word = () => Math.floor(r() * 36 ** 6).toString(36);
  const doc = {};
  for (let i = 0; i < fields; i++) doc[`field${i}`] = r() < 0.5 ? word() : Math.floor(r() * 1e6);
  const out = [];
  for (let n = 0; n < count; n++) {
    for (let e = 1 + Math.floor(r() * 3); e > 0; e--) doc[`field${Math.floor(r() * fields)}`] = r() < 0.5 ? word() : Math.floor(r() * 1e6);
    doc.seq = n;
    out.push(JSON.stringify(doc));
  }
  return out;
}

const srv = await startServer({
  http_stream: true, client_insecure: true, api_key: API_KEY,
  namespaces: [{ name: 'doc', allowed_delta_types: ['fossil'] }],
});
const channel = 'doc:bench';

// JSON subscribers: raw streams; bytes counted from the subscribe reply on.
async function jsonSubscriber(delta) {
  const s = await connectRaw(srv.base);
  const sub = { channel };
  if (delta) sub.delta = 'fossil';
  const r = await call(s, { id: 2, subscribe: sub });
  assert.equal(Boolean(r.subscribe.delta), delta);
  const counter = { bytes: 0, pubs: 0 };
  s.res.on('data', (chunk) => {
    counter.bytes += chunk.length;
    counter.pubs += chunk.toString('latin1').split('"pub":').length - 1;
  });
  return counter;
}

// Protobuf subscribers: SubscribeRequest channel = 1, delta = 12 (client.proto).
async function pbSubscriber(delta) {
  const s = await openPbStream(srv.base);
  const result = parse(parse(await s.next())[5][0]); // Reply.connect = 5: session 9, node 10
  const sub = delta ? msg(fBytes(1, channel), fBytes(12, 'fossil')) : msg(fBytes(1, channel));
  const subscribe = msg(fVarint(1, 2), fBytes(5, sub)); // Command.id = 1, subscribe = 5
  const status = await emulatePb(srv.base, emulationBody(result[10][0].toString(), result[9][0].toString(), delimited(subscribe)));
  assert.equal(status, 204);
  const reply = parse(parse(await s.next())[6][0]); // Reply.subscribe = 6: delta = 13
  assert.equal(Boolean(reply[13]), delta);
  const counter = { bytes: 0, pubs: 0 };
  const seen = s.chunks.length;
  const countNew = () => {
    while (counter.seenChunks < s.chunks.length) counter.bytes += s.chunks[counter.seenChunks++].length;
    counter.pubs = s.replies.length - 2;
  };
  counter.seenChunks = seen;
  counter.refresh = countNew;
  return counter;
}

const subs = {
  'JSON, no delta': await jsonSubscriber(false),
  'JSON, fossil delta': await jsonSubscriber(true),
  'protobuf, no delta': await pbSubscriber(false),
  'protobuf, fossil delta': await pbSubscriber(true),
};

const docs = documents(COUNT, FIELDS);
let payload = 0;
for (const d of docs) {
  payload += Buffer.byteLength(d);
  const res = await api(srv.base, 'publish', { channel, data: JSON.parse(d), delta: true }, { key: API_KEY });
  assert.equal(res.status, 200, res.body);
}
const deadline = Date.now() + 20000;
const refresh = () => { for (const c of Object.values(subs)) if (c.refresh) c.refresh(); };
for (;;) {
  refresh();
  if (!Object.values(subs).some((c) => c.pubs < COUNT) || Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 50));
}

const rows = Object.entries(subs).map(([name, c]) => ({ name, bytes: c.bytes, pubs: c.pubs }));
const base = { JSON: rows[0].bytes, protobuf: rows[2].bytes };
console.log(`\n${COUNT} publications of a ${FIELDS}-field document (${Math.round(payload / COUNT)} bytes of JSON each on average, 1-3 fields changed each time)\n`);
console.log('| subscriber | publications received | stream bytes | bytes per publication | vs. no delta |');
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows) {
  const ref = base[r.name.split(',')[0]];
  console.log(`| ${r.name} | ${r.pubs} | ${r.bytes} | ${(r.bytes / Math.max(1, r.pubs)).toFixed(1)} | ${(r.bytes / ref).toFixed(3)} |`);
}
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ count: COUNT, fields: FIELDS, payload, rows }, null, 2));
closeAllRaw();
await stopAll();
for (const r of rows) assert.equal(r.pubs, COUNT, `${r.name} got every publication`);
process.exit(0);
