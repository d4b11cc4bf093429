// Memory pressure (issue 14): streamd runs under tests/alloc_fail's LD_PRELOAD shim, which makes a
// share of malloc/calloc/realloc calls fail once the server listens, while SDK clients (HTTP streaming
// and WebSocket), raw JSON and protobuf streams, emulation POSTs and the server API connect,
// subscribe, publish and read history. streamd may refuse work (error replies, disconnects, 503s), but
// it must not crash or hang, and every frame a client does get must be whole: each line of the raw
// observers' streams parses, and every publication they and the SDK observer get carries its data
// intact. At the end the failure rate goes back to 0 and the same server must serve a new client
// end to end. ALLOC_FAIL_SEED=N reruns one choice of failures (the seed used is in the test's output).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer, stopAll, BASE_CONFIG, API_KEY, STREAMD_BIN } from './lib/server.js';
import { api, delay, withTimeout } from './lib/http.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';
import { Centrifuge, connectedClient, subscribe, closeAllClients, newClient } from './lib/sdk.js';
import { cmd, delimited, openPbStream } from './lib/pb.js';

const LIB = process.env.ALLOC_FAIL_LIB || path.join(path.dirname(STREAMD_BIN), '..', 'tests', 'liballoc_fail.so');
const SANITIZED = existsSync(STREAMD_BIN) && readFileSync(STREAMD_BIN).includes('__asan_init');
const SKIP = !existsSync(LIB) ? `no shim at ${LIB} (build the alloc_fail target)` :
  SANITIZED ? 'a sanitizer build: ASan must be the only malloc replacement' : false;
const PPM = Number(process.env.ALLOC_FAIL_TEST_PPM || 20000); // 2 % of allocations fail
const DURATION_MS = 12000;
const PAD = 'x'.repeat(300);
const OP_MS = 4000; // any one operation under failures: given up after this

// Everything the rounds open, closed at the end: a round given up on may still hold its client.
const opened = [];
const track = (x, close) => {
  opened.push(() => {
    try {
      close(x);
    } catch {
      // already closed
    }
  });
  return x;
};
const subscribed = (sub) => withTimeout(new Promise((r) => sub.once('subscribed', r)), OP_MS, 'subscribed');

const attempt = async (p) => {
  try {
    await withTimeout(p, OP_MS, 'operation');
    return true;
  } catch {
    return false;
  }
};

/** Lines that are not whole JSON, and publications whose data is not what was published. */
function badFrames(stream) {
  const bad = [];
  for (const line of stream.allLines) {
    let m;
    try {
      m = JSON.parse(line);
    } catch {
      bad.push(`not JSON: ${line.slice(0, 120)}`);
      continue;
    }
    const data = m.push?.pub?.data;
    if (data && data.pad !== PAD) bad.push(`publication data damaged: ${line.slice(0, 120)}`);
  }
  if (stream.endError && !/aborted/.test(stream.endError.message)) bad.push(`stream ended with ${stream.endError.message}`);
  return bad;
}

describe('allocation failures', { skip: SKIP }, () => {
  let srv, dir, control;
  const seed = Number(process.env.ALLOC_FAIL_SEED || (Date.now() % 100000) + 1);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'streamd-allocfail-'));
    control = path.join(dir, 'rate');
    writeFileSync(control, '0');
    const env = { LD_PRELOAD: LIB, ALLOC_FAIL_CONTROL: control, ALLOC_FAIL_SEED: String(seed) };
    Object.assign(process.env, env); // startServer passes its environment on; only streamd is spawned here
    try {
      srv = await startServer({ ...BASE_CONFIG, sse: true, presence: true, history_size: 50, history_ttl: '300s',
        ping_interval: '60s', pong_timeout: '10s' });
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
  });

  after(async () => {
    for (const close of opened) close();
    closeAllClients();
    closeAllRaw();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses work but never crashes or corrupts a stream, and serves normally once memory is back', { timeout: 60000 }, async (t) => {
    t.diagnostic(`ALLOC_FAIL_SEED=${seed}`);
    // Observers, connected before the failures start: a raw JSON stream, a raw protobuf stream, and
    // the SDK over WebSocket, all on channel "obs".
    const rawObs = await connectRaw(srv.base);
    await call(rawObs, { subscribe: { channel: 'obs' }, id: 2 });
    const pbObs = track(await openPbStream(srv.base, delimited(cmd.connect(1))), (x) => x.close());
    const wsObs = track(new Centrifuge(`ws://127.0.0.1:${srv.port}/connection/websocket`,
      { websocket: WebSocket, timeout: OP_MS }), (x) => x.disconnect());
    wsObs.errors = [];
    wsObs.on('error', (e) => wsObs.errors.push(e));
    const wsPubs = [];
    const wsSub = wsObs.newSubscription('obs');
    wsSub.on('publication', (ctx) => wsPubs.push(ctx.data));
    wsSub.on('error', () => {});
    const wsSubscribed = new Promise((r) => wsSub.once('subscribed', r));
    wsSub.subscribe();
    wsObs.connect();
    await withTimeout(wsSubscribed, 10000, 'WebSocket observer subscribed');

    writeFileSync(control, String(PPM));
    const emulationStatuses = {};
    const rawStreams = [];
    const stats = { apiPublished: 0, sdkRounds: 0, rawRounds: 0, pbRounds: 0, wsRounds: 0 };
    const until = Date.now() + DURATION_MS;
    const worker = async (name, round) => {
      for (let i = 0; Date.now() < until; i++) if (await attempt(round(i))) stats[name]++;
    };
    await Promise.all([
      worker('apiPublished', async (i) => {
        const r = await api(srv.base, 'publish', { channel: 'obs', data: { i, pad: PAD } }, { key: API_KEY });
        assert.ok(r.status === 200 && r.json && !r.json.error);
        await api(srv.base, 'history', { channel: 'obs', limit: 5 }, { key: API_KEY });
        await api(srv.base, 'presence', { channel: 'obs' }, { key: API_KEY });
      }),
      worker('sdkRounds', async (i) => {
        const c = track(newClient(srv.base, { timeout: OP_MS }), (x) => x.disconnect());
        try {
          c.connect();
          const sub = c.newSubscription(`sdk${i % 5}`);
          sub.on('error', () => {});
          const done = subscribed(sub);
          sub.subscribe();
          await done;
          await sub.publish({ i, pad: PAD });
          await sub.history({ limit: 3 });
        } finally {
          c.disconnect();
        }
      }),
      worker('rawRounds', async (i) => {
        const s = track(await connectRaw(srv.base, { timeoutMs: OP_MS }), (x) => x.close());
        try {
          const commands = [{ subscribe: { channel: `raw${i % 5}` }, id: 2 },
            { publish: { channel: `raw${i % 5}`, data: { i, pad: PAD } }, id: 3 },
            { history: { channel: `raw${i % 5}`, limit: 3 }, id: 4 }];
          for (const c of commands) {
            const res = await s.emulate([c]);
            emulationStatuses[res.status] = (emulationStatuses[res.status] || 0) + 1;
            if (res.status !== 204) return;
            await s.reply(c.id, OP_MS);
          }
        } finally {
          rawStreams.push(s);
          s.close();
        }
      }),
      worker('pbRounds', async () => {
        const s = track(await openPbStream(srv.base), (x) => x.close());
        try {
          await s.next(OP_MS);
        } finally {
          s.close();
        }
      }),
      worker('wsRounds', async (i) => {
        const c = track(new Centrifuge(`ws://127.0.0.1:${srv.port}/connection/websocket`,
          { websocket: WebSocket, timeout: OP_MS }), (x) => x.disconnect());
        c.on('error', () => {});
        try {
          const sub = c.newSubscription(`ws${i % 5}`);
          sub.on('error', () => {});
          const done = subscribed(sub);
          sub.subscribe();
          c.connect();
          await done;
          await sub.publish({ i, pad: PAD });
        } finally {
          c.disconnect();
        }
      }),
    ]);
    writeFileSync(control, '0');
    await delay(500); // the shim reads the rate every 100 ms
    const [injected, seen] = readFileSync(`${control}.count`, 'utf8').trim().split(' ').map(Number);
    t.diagnostic(`${injected} of ${seen} allocations failed; ${JSON.stringify(stats)}; emulation statuses ${JSON.stringify(emulationStatuses)}`);

    if (process.env.ALLOC_FAIL_STDERR) writeFileSync(process.env.ALLOC_FAIL_STDERR, srv.stderr); // for a look at what was refused
    assert.equal(srv.exited, null, `streamd survived (seed ${seed}):\n${srv.stderr.slice(-3000)}`);
    assert.ok(injected > 0, 'the shim did fail allocations');
    assert.ok(stats.apiPublished > 0, 'some work still got through under the failures');
    assert.deepEqual(badFrames(rawObs), [], 'every frame the raw JSON observer got is whole');
    for (const s of rawStreams) assert.deepEqual(badFrames(s), [], 'every frame a raw client got is whole');
    // Valid commands refused for want of memory are not "bad requests": that would tell the client not
    // to try again (3501 and 3506 are terminal) or that its request was wrong (400, 413).
    const codes = rawStreams.flatMap((s) => s.allLines).map((l) => JSON.parse(l).push?.disconnect?.code).filter(Boolean);
    assert.ok(!codes.includes(3501), `no valid stream is disconnected with 3501 bad request (codes: ${codes})`);
    assert.ok(!codes.includes(3506), `no valid stream is disconnected with 3506 as if JSON could not carry its data (codes: ${codes})`);
    assert.ok(!emulationStatuses[400] && !emulationStatuses[413],
      `no valid emulation request gets 400 or 413 (statuses: ${JSON.stringify(emulationStatuses)})`);
    for (const d of wsPubs) assert.equal(d?.pad, PAD, 'every publication the WebSocket observer got is intact');

    // Memory is back: the same server serves a new client end to end.
    const c = await connectedClient(srv.base);
    const sub = await subscribe(c, 'after');
    await sub.publish({ pad: PAD, n: 1 });
    assert.equal((await sub.nextPub(10000)).data.n, 1, 'a publication reaches the new subscriber');
    const hist = await sub.history({ limit: 10 });
    assert.equal(hist.publications.length, 1, 'history works again');
    const r = await api(srv.base, 'publish', { channel: 'obs', data: { i: -1, pad: PAD } }, { key: API_KEY });
    assert.ok(r.status === 200 && r.json && !r.json.error, `the server API works again: ${r.status} ${r.body}`);
    if (!rawObs.ended) await rawObs.waitFor((f) => f.push?.pub?.data?.i === -1, 10000);
    assert.deepEqual(badFrames(rawObs), [], 'every frame the raw JSON observer got is whole');
    pbObs.close();
    wsObs.disconnect();
  });
});
