// Write-progress and close deadlines (websocket_write_timeout, http_stream_write_timeout,
// sse_write_timeout, client_close_timeout): a client that stops reading is dropped within the
// configured time on every transport, and its session goes (API info), instead of pinning its
// session, queue and socket buffers forever. The queue limit is set far above what is published, so
// what ends these connections is the deadline, not Disconnect 3008.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { api, delay } from './lib/http.js';
import { connectRaw, openRaw, call, closeAllRaw } from './lib/raw.js';
import { openWsRaw, clientFrame, closeAllWsRaw } from './lib/wsraw.js';

const DEADLINE_MS = 2000;
const SLACK_MS = 4000; // the deadline is checked a few times a second; a loaded machine is slower
const PAD = 'p'.repeat(64 * 1024);
const BASE = {
  http_stream: true, sse: true, client_insecure: true, api_key: API_KEY,
  ping_interval: '60s', pong_timeout: '0s', client_queue_max_size: 256 * 1024 * 1024,
};

let srv;
let closing; // a server whose write deadline is long: only the close deadline can end a connection
before(async () => {
  srv = await startServer({ ...BASE, websocket_write_timeout: '2s', http_stream_write_timeout: '2s',
    sse_write_timeout: '2s' });
  closing = await startServer({ ...BASE, websocket_write_timeout: '1h', http_stream_write_timeout: '1h',
    client_close_timeout: '2s' });
});
after(async () => {
  closeAllRaw();
  closeAllWsRaw();
  await stopAll();
});

async function numClients(s) {
  const r = await api(s.base, 'info', {}, { key: API_KEY });
  return r.json.result.nodes[0].num_clients;
}

/** Resolves with the ms it took until the server has COUNT clients; rejects after LIMIT ms. */
async function clientsDropTo(s, count, limit) {
  const start = Date.now();
  while (Date.now() - start < limit) {
    if ((await numClients(s)) === count) return Date.now() - start;
    await delay(100);
  }
  throw new Error(`the server still has ${await numClients(s)} clients after ${limit} ms (want ${count})`);
}

/** Publishes 64 KiB messages to CHANNEL until about 24 MB went out: more than any socket buffers. */
async function fill(s, channel) {
  for (let i = 0; i < 384; i++) {
    const r = await api(s.base, 'publish', { channel, data: { i, pad: PAD } }, { key: API_KEY });
    assert.equal(r.status, 200);
  }
}

/** A WebSocket subscribed to CHANNEL that then stops reading. */
async function stalledWs(s, channel) {
  const c = await openWsRaw(s.port);
  c.send(0x1, '{"id":1,"connect":{}}');
  c.client = (await c.nextJSON()).connect.client;
  c.send(0x1, JSON.stringify({ id: 2, subscribe: { channel } }));
  assert.deepEqual(await c.nextJSON(), { id: 2, subscribe: {} });
  c.socket.pause();
  return c;
}

/** After the server dropped C: once C reads again, the socket ends. */
async function endsOnceRead(socket) {
  const closed = new Promise((r) => socket.once('close', r));
  socket.on('data', () => {});
  socket.resume();
  await Promise.race([closed, delay(10000).then(() => { throw new Error('the socket did not end'); })]);
}

/** After the server dropped raw stream S: once S reads again, the stream ends. */
async function streamEndsOnceRead(s) {
  s.res.removeAllListeners('data');
  s.res.on('data', () => {});
  s.resume();
  await Promise.race([s.endPromise, delay(10000).then(() => { throw new Error('the stream did not end'); })]);
}

describe('write-progress deadline', () => {
  test('WebSocket: a subscriber that stops reading is closed within websocket_write_timeout', { timeout: 90000 }, async () => {
    const before = await numClients(srv);
    const c = await stalledWs(srv, 'ws-stall');
    await fill(srv, 'ws-stall');
    await clientsDropTo(srv, before, DEADLINE_MS + SLACK_MS);
    await endsOnceRead(c.socket);
  });

  test('WebSocket: a client that sends Pings before connect and never reads is closed', { timeout: 90000 }, async () => {
    const before = await numClients(srv);
    const c = await openWsRaw(srv.port);
    c.socket.pause();
    const pings = Buffer.concat(Array.from({ length: 512 }, () => clientFrame(0x9, 'x'.repeat(125))));
    // ~30 MB of pings, each answered with a 127-byte pong the client never reads
    for (let i = 0; i < 450 && !c.socket.destroyed; i++) {
      if (!c.socket.write(pings)) {
        await Promise.race([new Promise((r) => c.socket.once('drain', r)), delay(DEADLINE_MS + SLACK_MS)]);
      }
    }
    await clientsDropTo(srv, before, DEADLINE_MS + SLACK_MS);
    await endsOnceRead(c.socket);
  });

  test('http_stream: a subscriber that stops reading is closed within http_stream_write_timeout', { timeout: 90000 }, async () => {
    const before = await numClients(srv);
    const s = await connectRaw(srv.base);
    await call(s, { id: 2, subscribe: { channel: 'hs-stall' } });
    s.pause();
    await fill(srv, 'hs-stall');
    await clientsDropTo(srv, before, DEADLINE_MS + SLACK_MS);
    await streamEndsOnceRead(s);
  });

  test('SSE: a subscriber that stops reading is closed within sse_write_timeout', { timeout: 90000 }, async () => {
    const before = await numClients(srv);
    const s = await openRaw(srv.base, JSON.stringify({ id: 1, connect: {} }), { streamPath: '/connection/sse' });
    assert.equal(s.status, 200);
    let line;
    while ((line = await s.nextLine()) !== null && !line.startsWith('data:'));
    const reply = JSON.parse(line.slice(5));
    s.session = reply.connect.session;
    s.node = reply.connect.node;
    const res = await s.emulate([{ id: 2, subscribe: { channel: 'sse-stall' } }]);
    assert.equal(res.status, 204);
    s.pause();
    await fill(srv, 'sse-stall');
    await clientsDropTo(srv, before, DEADLINE_MS + SLACK_MS);
    await streamEndsOnceRead(s);
  });
});

describe('close deadline', () => {
  test('WebSocket: a closing session whose Close cannot be flushed is torn down within client_close_timeout', { timeout: 90000 }, async () => {
    const before = await numClients(closing);
    const c = await stalledWs(closing, 'ws-closing');
    await fill(closing, 'ws-closing');
    await delay(500);
    assert.equal(await numClients(closing), before + 1, 'the write deadline (1h) does not end it');
    const r = await api(closing.base, 'disconnect', { user: '', client: c.client }, { key: API_KEY });
    assert.deepEqual(r.json, { result: {} });
    await clientsDropTo(closing, before, DEADLINE_MS + SLACK_MS);
    await endsOnceRead(c.socket);
  });

  test('http_stream: a closing session read too slowly to flush is ended within client_close_timeout', { timeout: 90000 }, async () => {
    const before = await numClients(closing);
    const s = await connectRaw(closing.base);
    await call(s, { id: 2, subscribe: { channel: 'hs-closing' } });
    s.pause();
    await fill(closing, 'hs-closing');
    const r = await api(closing.base, 'disconnect', { user: '', client: s.client }, { key: API_KEY });
    assert.deepEqual(r.json, { result: {} });
    // read a little every 100 ms: progress, so only the close deadline can end it
    let trickling = true;
    s.res.removeAllListeners('data');
    s.res.on('data', () => { s.pause(); if (trickling) setTimeout(() => s.resume(), 100); });
    s.resume();
    try {
      await clientsDropTo(closing, before, DEADLINE_MS + SLACK_MS);
    } finally {
      trickling = false;
    }
    await streamEndsOnceRead(s);
  });
});
