#!/usr/bin/env node
// The churn soak of issue 14: two streamd nodes on one redis-server, a population of raw (http_stream,
// SSE, WebSocket) and SDK (JSON, protobuf) clients that connect, subscribe with recovery, get killed in
// unfriendly ways and come back, publishers numbering their publications (client publishes through
// emulation POSTs to either node, server API publishes to either node), API disconnects, one Redis
// restart and one node restart; then one table and exit code 0 only when nothing was lost, duplicated
// or reordered, nothing crashed and nothing grew. README.md defines every figure.
//
//   node tests/soak/soak.mjs [--minutes N] [--clients N] [--smoke]
//
// Threads: Node's event loop only; all client, publisher and fault loops are timers on it.
import { startServer, sanitizerReport, API_KEY, STREAMD_BIN } from '../integration/lib/server.js';
import { startRedis } from '../integration/lib/redis.js';
import { api, delay } from '../integration/lib/http.js';
import { hsToken } from '../integration/lib/jwt.js';
import { Ledger } from './ledger.mjs';
import { RawClient, KILLS } from './raw_client.mjs';
import { SdkClient } from './sdk_client.mjs';
import { footprint, underAsan, nodeInfo, channelCount, presenceStats, historyLength, heap } from './probes.mjs';
import { printReport } from './report.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const SMOKE = argv.includes('--smoke');
const MINUTES = opt('--minutes', 30);
const TOTAL_MS = SMOKE ? 60000 : MINUTES * 60000;
const PLAN = SMOKE
  ? { clients: opt('--clients', 150), warm: opt('--clients', 150), lifeMs: [2000, 10000], pubEveryMs: 120, apiDisconnectEveryMs: 2000, overheadMs: 26000 }
  : { clients: opt('--clients', 1500), warm: opt('--clients', 1500), lifeMs: [5000, 60000], pubEveryMs: 200, apiDisconnectEveryMs: 1000, overheadMs: 60000 };
const CHANNELS = Array.from({ length: SMOKE ? 6 : 12 }, (_, i) => `soak:c${i}`);
const SUBS_PER_CLIENT = 2;
const HISTORY_SIZE = 200;
const SECRET = 'soak-secret';
const SETTLE_MS = SMOKE ? 15000 : 30000; // longest wait for memory, fds, sessions and presence to come back
const TOLERANCE = 0.05;
// The client mix: kind and share of the population.
const MIX = [['http', 0.45], ['ws', 0.25], ['sse', 0.15], ['sdk-json', 0.10], ['sdk-pb', 0.05]];

// The nodes run with one glibc malloc arena (MALLOC_ARENA_MAX=1, inherited through server.js's
// spawn) unless SOAK_MALLOC_ARENA_MAX says otherwise ("default": glibc's own choice). With glibc's
// per-thread arenas the free memory each thread's arena retains keeps RSS 7-13 % above the baseline
// after the smoke, and back within 3 % with one arena (README.md): RSS then measures what streamd holds.
const ARENAS = process.env.SOAK_MALLOC_ARENA_MAX || '1';
if (ARENAS === 'default') delete process.env.MALLOC_ARENA_MAX;
else process.env.MALLOC_ARENA_MAX = ARENAS;

const t0 = Date.now();
const log = (msg) => process.stderr.write(`[soak +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
const failures = [];

const ledger = new Ledger();
const stats = { connects: 0, refused: 0, badFrames: 0, sdkErrors: 0, unsubscribed: 0, posts: 0, routedPosts: 0,
  apiDisconnects: 0, kills: {}, postStatus: {}, subscribeFailures: {}, disconnectPushes: {}, peakClients: 0 };
const nodes = [];          // { srv, base, port, up, baseline, incarnations: [exit results] }
let redis;
const tokens = new Map();
const ctx = {
  ledger,
  stats,
  nodes: () => nodes.filter((n) => n.up),
  home: () => nodes[0],
  token: (user) => {
    if (!tokens.has(user)) tokens.set(user, hsToken({ sub: user, exp: Math.floor(Date.now() / 1000) + 86400 }, SECRET));
    return tokens.get(user);
  },
  onGone: (c) => population.delete(c),
};
const population = new Set();
let nextClientId = 1;
let churning = false;

function nodeConfig() {
  return {
    http_stream: true, sse: true, client_insecure: true, api_key: API_KEY, engine: 'redis',
    redis_address: redis.address, redis_prefix: `soak${process.pid}`, token_hmac_secret_key: SECRET,
    pong_timeout: '0s', global_presence_ttl: '5s', prometheus: true, // /metrics: the heap gauges
    namespaces: [{ name: 'soak', history_size: HISTORY_SIZE, history_ttl: '600s', allow_recovery: true,
      presence: true, allow_subscribe_for_client: true, allow_publish_for_subscriber: true }],
  };
}

async function startNode(i, port = 0) {
  const srv = await startServer({ ...nodeConfig(), name: `soak${i}`, ...(port ? { port } : {}) });
  const n = nodes[i] || { incarnations: [] };
  Object.assign(n, { srv, base: srv.base, port: srv.port, up: false, pid: srv.child.pid });
  nodes[i] = n;
  srv.exitPromise.then(() => {
    if (n.srv === srv && !n.stopping) {
      failures.push(`node ${srv.base} exited during the run: ${JSON.stringify(srv.exited)}`);
      log(`node ${srv.base} exited during the run (${JSON.stringify(srv.exited)}); stderr tail:\n${srv.stderr.slice(-6000)}`);
      n.up = false;
    }
  });
  return n;
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function channelsFor() {
  const out = new Set();
  while (out.size < SUBS_PER_CLIENT) out.add(pick(CHANNELS));
  return [...out];
}

function spawnClient(kind = null) {
  if (!kind) {
    let r = Math.random();
    kind = MIX[MIX.length - 1][0];
    for (const [k, share] of MIX) {
      if ((r -= share) < 0) { kind = k; break; }
    }
  }
  const id = nextClientId++;
  const c = kind.startsWith('sdk')
    ? new SdkClient(ctx, { id, channels: channelsFor(), protobuf: kind === 'sdk-pb' })
    : new RawClient(ctx, { kind, id, channels: channelsFor() });
  population.add(c);
  stats.peakClients = Math.max(stats.peakClients, population.size);
  c.start();
  if (churning) scheduleDeath(c);
  return c;
}

function scheduleDeath(c) {
  const [lo, hi] = PLAN.lifeMs;
  setTimeout(() => {
    if (!churning || c.retired) return;
    const recover = Math.random() < 0.7;
    c.kill(pick(KILLS), recover);
    if (recover) scheduleDeath(c);
    else spawnClient();
  }, lo + Math.random() * (hi - lo));
}

// Publishers: API publishers (each publication to a random node) and raw http_stream clients whose
// publishes go through emulation POSTs to their own node or to the other one.
function startPublishers() {
  const publishers = [];
  for (let i = 0; i < 2; i++) {
    publishers.push({ name: `api${i}`, send: async (channel, data) => {
      const up = ctx.nodes();
      if (!up.length) return 'unknown';
      try {
        const r = await api(pick(up).base, 'publish', { channel, data }, { key: API_KEY });
        if (r.json && r.json.result) return 'ok';
        return r.json && r.json.error ? 'failed' : 'unknown';
      } catch {
        return 'unknown';
      }
    } });
  }
  for (let i = 0; i < 4; i++) {
    const c = new RawClient(ctx, { kind: 'http', id: `pub${i}`, channels: [] });
    c.start();
    publishers.push({ name: `cli${i}`, client: c, send: (channel, data) => c.publish(channel, data) });
  }
  const state = { running: true, loops: [] };
  for (const p of publishers) {
    state.loops.push((async () => {
      while (state.running) {
        if (p.client && !p.client.ready) { await delay(100); continue; }
        const channel = pick(CHANNELS);
        const rec = ledger.begin(channel, p.name);
        ledger.settle(rec, await p.send(channel, { p: p.name, s: rec.seq }));
        await delay(PLAN.pubEveryMs * (0.5 + Math.random()));
      }
    })());
  }
  state.stop = async () => {
    state.running = false;
    await Promise.all(state.loops);
    for (const p of publishers) if (p.client) p.client.kill('fin', false);
  };
  return state;
}

function startApiDisconnects() {
  const timer = setInterval(() => {
    const up = ctx.nodes();
    const victims = [...population];
    if (!up.length || !victims.length) return;
    stats.apiDisconnects++;
    api(pick(up).base, 'disconnect', { user: pick(victims).user }, { key: API_KEY }).catch(() => {});
  }, PLAN.apiDisconnectEveryMs);
  return () => clearInterval(timer);
}

async function allLeave() {
  churning = false;
  for (const c of [...population]) c.kill('rst', false);
  population.clear();
}

/** Polls until COND() is true or MS passed; returns the last value of COND(). */
async function settle(cond, ms) {
  const until = Date.now() + ms;
  let v;
  for (;;) {
    v = await cond();
    if (v || Date.now() > until) return v;
    await delay(500);
  }
}

async function sessionsGone(n) {
  const info = await nodeInfo(n.base).catch(() => []);
  return info.length > 0 && info.every((x) => x.num_clients === 0 && x.num_subs === 0 && x.num_channels === 0);
}

/**
 * Baseline of node N: after a warm-up cycle of COUNT raw clients (http_stream, WebSocket, SSE) pinned to
 * it that connect, subscribe, receive for 4 s and leave (RST), once its sessions are gone and its fd
 * count has been steady for 2 s.
 */
async function warmUpAndBaseline(n, count) {
  const pinned = { ...ctx, nodes: () => [n], onGone: () => {} };
  // Raw clients only: the SDK's fetch keeps its connections open (keep-alive) long after it disconnected,
  // which would inflate the fd baseline.
  const cs = Array.from({ length: count }, (_, i) => new RawClient(pinned, { kind: MIX[i % 3][0], id: `w${nextClientId++}`, channels: channelsFor() }));
  for (const c of cs) c.start();
  await delay(4000);
  for (const c of cs) c.kill('rst', false);
  await settle(() => sessionsGone(n), 10000);
  // The SDK's fetch keeps idle keep-alive connections open for a few seconds: wait until the fd count
  // has been the same for 2 s (at most 10 s).
  let last = -1;
  let same = 0;
  await settle(() => {
    const fds = footprint(n.pid).fds;
    same = fds === last ? same + 1 : 0;
    last = fds;
    return same >= 4;
  }, 10000);
  n.baseline = footprint(n.pid);
  n.baseline.heap = await heap(n.base);
  n.asan = underAsan(n.pid);
  log(`node ${n.base} baseline: RSS ${n.baseline.rssKiB} KiB, ${n.baseline.fds} fds${n.asan ? ' (ASan: RSS not judged)' : ''}`);
}

async function main() {
  log(`binary ${STREAMD_BIN}; ${SMOKE ? 'smoke' : MINUTES + ' min'}; ${PLAN.clients} clients, ${CHANNELS.length} channels; ` +
    `MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX || '(glibc default)'}`);
  redis = await startRedis();
  await startNode(0);
  await startNode(1);
  for (const n of nodes) await warmUpAndBaseline(n, PLAN.warm);
  for (const n of nodes) n.up = true;

  churning = true;
  for (let i = 0; i < PLAN.clients; i++) {
    spawnClient();
    if (i % 50 === 49) await delay(100);
  }
  const pubs = startPublishers();
  const stopDisconnects = startApiDisconnects();
  const churnMs = Math.max(20000, TOTAL_MS - PLAN.overheadMs - (Date.now() - t0));
  const churnEnd = Date.now() + churnMs;
  log(`churn for ${(churnMs / 1000).toFixed(0)} s`);

  await delay(churnMs * 0.3);
  log('fault: Redis restart');
  if (process.env.SOAK_NO_REDIS_RESTART !== '1') await redis.restart();
  await delay(churnMs * 0.3);
  log('fault: node 1 restart (SIGTERM, start again on its port)');
  const n1 = nodes[1];
  n1.up = false;
  n1.stopping = true;
  n1.incarnations.push(await n1.srv.stop('SIGTERM'));
  n1.stopping = false;
  await startNode(1, n1.port);
  await warmUpAndBaseline(n1, PLAN.warm);
  n1.up = true;
  for (let i = 1; Date.now() < churnEnd; i++) {
    await delay(1000);
    if (i % 10 === 0) log(`${population.size} clients, ${ledger.counts.ok} publications ok`);
  }

  log('stopping publishers and churn; waiting for in-flight deliveries');
  churning = false;
  stopDisconnects();
  await pubs.stop();
  await settle(() => {
    for (const t of ledger.tracks) {
      if (!t.cur || t.suspendedAt) continue;
      const last = ledger.lastOk(t.channel);
      for (const [p, seq] of last) {
        if (t.cur.start > ledger.pubs.get(`${t.channel}\n${p}`)[seq].sentAt) continue;
        const got = t.cur.recv.get(p);
        if (!got || !got.includes(seq)) return false;
      }
    }
    return true;
  }, 15000);
  // Windows still suspended now (a reconnect under way) are judged as closed at their suspension.
  for (const t of ledger.tracks) if (t.suspendedAt) t.close();
  const verdict = ledger.verdict();
  log('all clients leave');
  await allLeave();

  // Bounds: sessions, channels, presence and history.
  const bounds = [];
  for (const n of nodes) {
    const gone = await settle(() => sessionsGone(n), SETTLE_MS);
    const info = await nodeInfo(n.base).catch(() => []);
    const mine = info.find((x) => x.name === n.srv.configText.match(/name = "([^"]+)"/)[1]) || info[0] || {};
    bounds.push({ what: `sessions/subs/channels on ${mine.name || n.base}`, value: `${mine.num_clients}/${mine.num_subs}/${mine.num_channels}`, bound: '0/0/0', ok: gone });
  }
  const chans = await settle(async () => (await channelCount(nodes[0].base).catch(() => -1)) === 0, SETTLE_MS);
  bounds.push({ what: 'channels (API channels)', value: await channelCount(nodes[0].base).catch(() => -1), bound: 0, ok: chans });
  let presenceMax = 0;
  const presenceOk = await settle(async () => {
    presenceMax = 0;
    for (const ch of CHANNELS) presenceMax = Math.max(presenceMax, (await presenceStats(nodes[0].base, ch)).num_clients);
    return presenceMax === 0;
  }, SETTLE_MS);
  bounds.push({ what: 'presence clients, max over channels', value: presenceMax, bound: 0, ok: presenceOk });
  let histMax = 0;
  for (const ch of CHANNELS) histMax = Math.max(histMax, await historyLength(nodes[1].base, ch));
  bounds.push({ what: 'history length, max over channels', value: histMax, bound: `<= ${HISTORY_SIZE}`, ok: histMax >= 0 && histMax <= HISTORY_SIZE });

  // Footprint: RSS and fds back within 5 % of the baseline.
  const footprints = [];
  for (const n of nodes) {
    let now;
    const back = await settle(() => {
      now = footprint(n.pid);
      if (now.gone) return false;
      return now.fds <= n.baseline.fds * (1 + TOLERANCE) && (n.asan || now.rssKiB <= n.baseline.rssKiB * (1 + TOLERANCE));
    }, SETTLE_MS);
    if (!now.gone) now.heap = await heap(n.base);
    footprints.push({ node: n.base, baseline: n.baseline, now, asan: n.asan, ok: back });
    if (now.gone) break; // the node died: its exit below says how
  }

  // Crashes: every incarnation's exit, sanitizer reports.
  const exits = [];
  for (const n of nodes) {
    n.stopping = true;
    n.incarnations.push(await n.srv.stop('SIGTERM'));
    for (const r of n.incarnations) {
      const clean = r.code === 0 && !r.timedOut && !sanitizerReport(r.stderr);
      exits.push({ node: n.base, code: r.code, signal: r.signal, timedOut: r.timedOut, sanitizer: sanitizerReport(r.stderr), ok: clean });
      if (!clean) log(`unclean exit of ${n.base}: stderr tail:\n${r.stderr.slice(-4000)}`);
    }
  }
  await redis.stop();

  const t = verdict.totals;
  if (t.lost) failures.push(`${t.lost} publications lost`);
  if (t.duplicated) failures.push(`${t.duplicated} publications duplicated`);
  if (t.reordered) failures.push(`${t.reordered} publications out of order`);
  if (t.expected === 0) failures.push('no publication was expected anywhere: the soak did not run');
  for (const b of bounds) if (!b.ok) failures.push(`bound exceeded: ${b.what} = ${b.value} (bound ${b.bound})`);
  for (const f of footprints) {
    if (!f.ok) failures.push(`node ${f.node} did not come back: RSS ${f.now.rssKiB} KiB vs ${f.baseline.rssKiB}, fds ${f.now.fds} vs ${f.baseline.fds}`);
  }
  for (const e of exits) if (!e.ok) failures.push(`node ${e.node} exited uncleanly: ${JSON.stringify(e)}`);

  printReport({ smoke: SMOKE, minutes: MINUTES, plan: PLAN, channels: CHANNELS, verdict, ledger, stats, bounds, footprints, exits, failures,
    elapsedMs: Date.now() - t0 });
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`soak: ${e.stack || e}\n`);
  process.exit(2);
});
