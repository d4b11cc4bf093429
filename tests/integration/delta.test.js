// Delta compression (Centrifugo's fossil deltas, namespace options allowed_delta_types and
// delta_publish, the publish API's `delta`): the official SDK negotiates `delta: 'fossil'` and decodes
// every publication with its own fossil decoder, so each test checks that what the application sees is
// exactly what was published, over http_stream, SSE and WebSocket, in JSON and protobuf, with random
// data (the encoder against the SDK's decoder) and with recovery; raw frames show the wire form.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { api, withTimeout } from './lib/http.js';
import { connectRaw, call, closeAllRaw } from './lib/raw.js';
import { once, collectPublications, SDK_TIMEOUT_MS, SDK_TRANSPORTS } from './lib/sdk.js';

let srv;
const clients = [];

before(async () => {
  srv = await startServer({
    http_stream: true, sse: true, client_insecure: true,
    api_key: API_KEY,
    namespaces: [
      { name: 'doc', allowed_delta_types: ['fossil'] },
      { name: 'auto', allowed_delta_types: ['fossil'], delta_publish: true },
      { name: 'rec', allowed_delta_types: ['fossil'], delta_publish: true, history_size: 100,
        history_ttl: '300s', force_recovery: true },
      { name: 'plain' },
    ],
  });
});
after(async () => {
  for (const c of clients) c.disconnect();
  closeAllRaw();
  await stopAll();
});

const dec = new TextDecoder();

// The SDK clients under test (every transport, both codecs), on this file's server.
const transports = Object.fromEntries(Object.entries(SDK_TRANSPORTS).map(([name, make]) => [name, () => make(srv)]));

async function connect(make) {
  const c = make();
  c.on('error', () => {});
  clients.push(c);
  const p = once(c, 'connected', SDK_TIMEOUT_MS + 5000);
  c.connect();
  await p;
  return c;
}

async function subscribeDelta(c, channel, opts = { delta: 'fossil' }) {
  const sub = c.newSubscription(channel, opts);
  collectPublications(sub);
  const p = once(sub, 'subscribed', SDK_TIMEOUT_MS + 5000);
  sub.subscribe();
  sub.subscribedCtx = await p;
  return sub;
}

// What the application got: JSON clients parse the data, protobuf clients get the bytes.
const asValue = (data) => (data instanceof Uint8Array ? JSON.parse(dec.decode(data)) : data);

async function publish(channel, data, extra = {}) {
  const res = await api(srv.base, 'publish', { channel, data, ...extra }, { key: API_KEY });
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json.error, undefined, res.body);
  return res.json.result;
}

// A seeded PRNG (mulberry32), so that a failure can be rerun with the same data.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A document of SIZE fields whose successive versions differ in a few places: what delta is for.
function documents(count, { seed = 7, fields = 60 } = {}) {
  const r = rng(seed);
  // by code point: indexing the string itself would cut 😀 into lone surrogates, which are not JSON text
  const alphabet = Array.from('abcdefghijklmnopqrstuvwxyz éü€中文😀"\\/\n\t');
  const word = () => Array.from({ length: 1 + Math.floor(r() * 12) }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
  const doc = {};
  for (let i = 0; i < fields; i++) doc[`field${i}`] = r() < 0.5 ? word() : Math.floor(r() * 1e6);
  const out = [];
  for (let n = 0; n < count; n++) {
    const edits = 1 + Math.floor(r() * 3);
    for (let e = 0; e < edits; e++) {
      const k = `field${Math.floor(r() * (fields + 5))}`; // now and then a new field
      if (r() < 0.1) delete doc[k];
      else doc[k] = r() < 0.5 ? word() : Math.floor(r() * 1e6);
    }
    doc.seq = n;
    out.push(structuredClone(doc));
  }
  return out;
}

async function receiveAll(sub, count) {
  const got = [];
  for (let i = 0; i < count; i++) got.push(asValue((await sub.nextPub()).data));
  return got;
}

describe('the SDK decodes fossil deltas on every transport', () => {
  for (const [name, make] of Object.entries(transports)) {
    test(`${name}: delta negotiated, every publication arrives intact, most as deltas`, async () => {
      const c = await connect(make);
      const channel = `doc:${name.replace(/\W/g, '_')}`;
      const sub = await subscribeDelta(c, channel);
      assert.equal(sub._delta_negotiated, true, 'the subscribe reply said delta: true');
      const docs = documents(40, { seed: name.length });
      for (const d of docs) await publish(channel, d, { delta: true });
      assert.deepEqual(await receiveAll(sub, docs.length), docs);
      const stats = sub.deltaStats();
      assert.equal(stats.numPublications, docs.length);
      assert.equal(stats.numFullPayloads, 1, 'only the first publication after subscribing is whole');
      assert.equal(stats.numDeltaPayloads, docs.length - 1);
      assert.ok(stats.compressionRatio > 0.7, `compression ratio ${stats.compressionRatio}`);
    });
  }
});

describe('random data', () => {
  test('500 random edits of random UTF-8 text, JSON and protobuf subscribers on one channel', async () => {
    const json = await connect(transports['http_stream JSON']);
    const pb = await connect(transports['WebSocket protobuf']);
    const a = await subscribeDelta(json, 'doc:random');
    const b = await subscribeDelta(pb, 'doc:random');
    const r = rng(20261203);
    const chars = 'ab01 {}[]:,"\\\u0000\u001fé€😀\u2028';
    let text = '';
    const sent = [];
    for (let i = 0; i < 500; i++) {
      const op = r();
      const at = Math.floor(r() * (text.length + 1));
      const piece = Array.from({ length: Math.floor(r() * 40) }, () => chars[Math.floor(r() * chars.length)]).join('');
      if (op < 0.4) text = text.slice(0, at) + piece + text.slice(at);
      else if (op < 0.7) text = text.slice(0, at) + text.slice(at + Math.floor(r() * 50));
      else if (op < 0.95) text = text.slice(0, at) + piece + text.slice(at + piece.length);
      else text = piece; // now and then something else entirely
      // slicing may cut a surrogate pair: a lone half becomes 'x', so the text stays valid UTF-8
      text = text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, 'x');
      sent.push({ i, text });
    }
    for (const d of sent) await publish('doc:random', d, { delta: true });
    assert.deepEqual(await receiveAll(a, sent.length), sent);
    assert.deepEqual(await receiveAll(b, sent.length), sent);
    assert.ok(a.deltaStats().numDeltaPayloads > 250, JSON.stringify(a.deltaStats()));
    assert.ok(b.deltaStats().numDeltaPayloads > 250, JSON.stringify(b.deltaStats()));
  });
});

describe('who gets deltas', () => {
  test('a subscriber without delta, and one in a namespace without it, get whole data', async () => {
    const c = await connect(transports['http_stream JSON']);
    const withDelta = await subscribeDelta(c, 'doc:mixed');
    const without = await subscribeDelta(c, 'doc:mixed2', {});
    const notAllowed = await subscribeDelta(c, 'plain:x');
    assert.equal(without._delta_negotiated, false);
    assert.equal(notAllowed._delta_negotiated, false, 'plain does not allow delta: not negotiated, not an error');
    const docs = documents(5);
    for (const d of docs) {
      await publish('doc:mixed', d, { delta: true });
      await publish('doc:mixed2', d, { delta: true });
      await publish('plain:x', d, { delta: true });
    }
    assert.deepEqual(await receiveAll(withDelta, 5), docs);
    assert.deepEqual(await receiveAll(without, 5), docs);
    assert.deepEqual(await receiveAll(notAllowed, 5), docs);
    assert.equal(withDelta.deltaStats().numDeltaPayloads, 4);
  });

  test('a late subscriber starts from a whole publication; publications without delta go whole', async () => {
    const c1 = await connect(transports['WebSocket JSON']);
    const early = await subscribeDelta(c1, 'doc:late');
    const docs = documents(8, { seed: 3 });
    for (const d of docs.slice(0, 4)) await publish('doc:late', d, { delta: true });
    assert.deepEqual(await receiveAll(early, 4), docs.slice(0, 4));
    const c2 = await connect(transports['http_stream protobuf']);
    const late = await subscribeDelta(c2, 'doc:late');
    await publish('doc:late', docs[4], { delta: true });
    await publish('doc:late', docs[5]); // not asked as delta
    await publish('doc:late', docs[6], { delta: true });
    await publish('doc:late', docs[7], { delta: true });
    assert.deepEqual(await receiveAll(early, 4), docs.slice(4));
    assert.deepEqual(await receiveAll(late, 4), docs.slice(4));
    assert.equal(early.deltaStats().numDeltaPayloads, 3 + 3, 'all but its first and the one without delta');
    assert.equal(late.deltaStats().numFullPayloads, 2, 'its first one, and the one published without delta');
  });

  test('delta_publish: client publications go as deltas too', async () => {
    const c = await connect(transports['SSE JSON']);
    const sub = await subscribeDelta(c, 'auto:chat');
    const docs = documents(6, { seed: 11 });
    for (const d of docs) await sub.publish(d);
    assert.deepEqual(await receiveAll(sub, 6), docs);
    assert.equal(sub.deltaStats().numDeltaPayloads, 5);
  });
});

describe('recovery', () => {
  for (const name of ['http_stream JSON', 'WebSocket protobuf']) {
    test(`${name}: publications missed while away are recovered whole, deltas go on after`, async () => {
      const c = await connect(transports[name]);
      const channel = `rec:${name.replace(/\W/g, '_')}`;
      const sub = await subscribeDelta(c, channel);
      const docs = documents(12, { seed: 5 });
      for (const d of docs.slice(0, 3)) await publish(channel, d);
      assert.deepEqual(await receiveAll(sub, 3), docs.slice(0, 3));
      const gone = once(c, 'disconnected');
      c.disconnect();
      await gone;
      for (const d of docs.slice(3, 8)) await publish(channel, d);
      const back = once(sub, 'subscribed', SDK_TIMEOUT_MS + 5000);
      c.connect();
      const ctx = await back;
      assert.equal(ctx.recovered, true);
      for (const d of docs.slice(8)) await publish(channel, d);
      assert.deepEqual(await receiveAll(sub, 9), docs.slice(3));
      assert.ok(sub.deltaStats().numDeltaPayloads >= 2 + 3, JSON.stringify(sub.deltaStats()));
    });
  }
});

describe('on the wire', () => {
  test('JSON: delta true in the reply; data as a JSON string; deltas in fossil form, smaller', async () => {
    const s = await connectRaw(srv.base);
    const r = await call(s, { id: 2, subscribe: { channel: 'doc:wire', delta: 'fossil' } });
    assert.equal(r.subscribe.delta, true);
    const docs = documents(3, { seed: 9, fields: 40 });
    for (const d of docs) await publish('doc:wire', d, { delta: true });
    const pubs = [];
    while (pubs.length < 3) {
      const m = await s.nextJSON(SDK_TIMEOUT_MS, { skipPings: true });
      if (m.push && m.push.pub) pubs.push(m.push.pub);
    }
    assert.equal(typeof pubs[0].data, 'string');
    assert.deepEqual(JSON.parse(pubs[0].data), docs[0]);
    assert.equal(pubs[0].delta, undefined);
    for (const p of pubs.slice(1)) {
      assert.equal(p.delta, true);
      assert.equal(typeof p.data, 'string');
      assert.match(p.data, /^[0-9A-Za-z_~]+\n/, 'a fossil delta starts with the output size');
      assert.match(p.data, /[0-9A-Za-z_~]+;$/, 'and ends with the checksum');
      assert.ok(p.data.length < JSON.stringify(docs[1]).length / 3, `delta of ${p.data.length} chars`);
    }
    const h = await call(s, { id: 3, subscribe: { channel: 'doc:other', delta: 'zstd' } });
    assert.equal(h.subscribe.delta, undefined, 'an unknown delta type is not negotiated');
  });

  test('history and recovery never carry the delta flag the publisher set', async () => {
    await publish('rec:hist', { a: 1 });
    await publish('rec:hist', { a: 2 });
    const res = await api(srv.base, 'history', { channel: 'rec:hist', limit: 10 }, { key: API_KEY });
    assert.equal(res.status, 200);
    const pubs = res.json.result.publications;
    assert.deepEqual(pubs.map((p) => p.data), [{ a: 1 }, { a: 2 }]);
    for (const p of pubs) assert.equal(p.delta, undefined);
  });

  test('a subscriber without delta never sees string data or the delta flag', async () => {
    const s = await connectRaw(srv.base);
    await call(s, { id: 2, subscribe: { channel: 'auto:plainview' } });
    await publish('auto:plainview', { v: 1 });
    await publish('auto:plainview', { v: 2 });
    const seen = [];
    while (seen.length < 2) {
      const m = await withTimeout(s.nextJSON(SDK_TIMEOUT_MS, { skipPings: true }), SDK_TIMEOUT_MS, 'a push');
      if (m.push && m.push.pub) seen.push(m.push.pub);
    }
    assert.deepEqual(seen, [{ data: { v: 1 } }, { data: { v: 2 } }]);
  });
});
