// The open-files limit (issue 14): streamd's RLIMIT_NOFILE is lowered while it runs (prlimit --pid),
// then more streams are opened than it has descriptors for. The ones past the limit must be refused at
// once (503 or the connection closed), never left hanging in the listen backlog; the clients already
// connected (the SDK and a raw stream) keep getting publications; the condition is logged a bounded
// number of times, not once per refused connection; the process does not spin on its readable listen
// socket (CPU over a second compared with its idle baseline, generously); and once streams close,
// new connections are accepted again. A reload at the limit fails and keeps the running configuration.
// The admin socket's listener gets the same treatment as the HTTP one.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { delay } from './lib/http.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';
import { connectedClient, subscribe, closeAllClients } from './lib/sdk.js';
import { startAdminServer, rawAdmin, removeAdminDirs } from './lib/admin.js';

const LOG_LINE = /out of file descriptors/g;
const SPARE = 24; // descriptors left to streamd past what it holds when the limit is set
const ATTEMPTS = 60; // streams opened at the limit: more than SPARE

const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;

/** utime + stime of PID, in clock ticks. */
function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function cpuOverOneSecond(pid) {
  const t0 = cpuTicks(pid);
  await delay(1000);
  return cpuTicks(pid) - t0;
}

/**
 * One HTTP/1.1 keep-alive connection to the server API, opened before the limit is reached, so that
 * publishing needs no new descriptor on the server.
 */
function keepAliveApi(port) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  let waiter = null;
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0 || !waiter) return;
    const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
    if (buf.length < end + 4 + len) return;
    const status = Number(buf.slice(9, 12));
    const body = buf.slice(end + 4, end + 4 + len);
    buf = buf.slice(end + 4 + len);
    const w = waiter;
    waiter = null;
    w({ status, body });
  });
  const ready = new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return {
    ready,
    sock,
    publish(channel, data) {
      const body = JSON.stringify({ channel, data });
      return new Promise((resolve, reject) => {
        waiter = resolve;
        sock.once('error', reject);
        sock.write(`POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-API-Key: ${API_KEY}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      });
    },
  };
}

/** Opens a stream and says what became of it: { kind: 'stream', s } | 'refused' (with why) | 'hang'. */
async function attempt(base) {
  try {
    const s = await connectRaw(base, { timeoutMs: 8000 });
    return { kind: 'stream', s };
  } catch (e) {
    if (/no response headers within/.test(e.message)) return { kind: 'hang' };
    if (/status.*503|503/.test(e.message) || /socket hang up|ECONNRESET|EPIPE|closed|ended/.test(e.message)) {
      return { kind: 'refused', why: e.message };
    }
    return { kind: 'other', why: e.message };
  }
}

describe('open-files limit', () => {
  let srv;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, ping_interval: '60s', pong_timeout: '10s' });
  });

  after(async () => {
    closeAllClients();
    closeAllRaw();
    await stopAll();
  });

  it('refuses streams past the limit at once, keeps serving the others, logs it a bounded number of times, accepts again after', { timeout: 90000 }, async (t) => {
    const pid = srv.child.pid;
    const sdk = await connectedClient(srv.base);
    const sub = await subscribe(sdk, 'news');
    const raw = await connectRaw(srv.base);
    await call(raw, { subscribe: { channel: 'news' }, id: 2 });
    const apiConn = keepAliveApi(srv.port);
    await apiConn.ready;
    assert.equal((await apiConn.publish('news', { n: 0 })).status, 200, 'publish before the limit');
    await sub.nextPub(10000);
    await raw.waitFor((f) => f.push?.pub?.data?.n === 0, 10000);

    await delay(300); // the emulation requests' connections are closed by now
    const idle = await cpuOverOneSecond(pid);
    const limit = fdCount(pid) + SPARE;
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`]);

    const results = await Promise.all(Array.from({ length: ATTEMPTS }, () => attempt(srv.base)));
    const count = (k) => results.filter((r) => r.kind === k).length;
    const held = results.filter((r) => r.kind === 'stream').map((r) => r.s);
    assert.equal(count('hang'), 0, `no stream may hang unanswered at the limit (${count('hang')} of ${ATTEMPTS} did)`);
    assert.equal(count('other'), 0, `unexpected outcomes: ${JSON.stringify(results.filter((r) => r.kind === 'other'))}`);
    assert.ok(count('refused') >= ATTEMPTS - SPARE - 4, `the streams past the limit are refused (${count('refused')} refused, ${held.length} accepted)`);
    assert.ok(held.length > 0, 'streams under the limit are still accepted');

    // At the limit, with more clients knocking: no busy loop on the readable listen socket.
    const knockers = Array.from({ length: 5 }, () => net.connect(srv.port, '127.0.0.1').on('error', () => {}));
    const busy = await cpuOverOneSecond(pid);
    knockers.forEach((k) => k.destroy());
    assert.ok(busy <= Math.max(5 * idle, 25), `CPU at the limit (${busy} ticks/s) against idle (${idle} ticks/s): no spinning`);

    // The clients connected before the limit still get publications, whole.
    for (let n = 1; n <= 3; n++) {
      assert.equal((await apiConn.publish('news', { n })).status, 200, 'publish at the limit over a kept-alive connection');
      const p = await sub.nextPub(10000);
      assert.equal(p.data.n, n, 'the SDK client gets the publication');
      await raw.waitFor((f) => f.push?.pub?.data?.n === n, 10000);
    }
    for (const s of held) assert.ok(!s.ended, 'streams accepted under the limit stay open');

    // A reload at the limit either finds no descriptor for the config file (it fails, says so, and keeps
    // the configuration) or, when one was free at that instant (the refusal's spare descriptor is
    // being taken back), succeeds: either way it says which, and the server goes on.
    process.kill(pid, 'SIGHUP');
    const said = /reload failed|configuration reloaded/;
    for (let i = 0; i < 50 && !said.test(srv.stderr); i++) await delay(100);
    assert.match(srv.stderr, /reload failed, keeping the running configuration: .*(Too many open files|file)|configuration reloaded/,
      'a reload at the limit fails cleanly or succeeds');
    assert.equal((await apiConn.publish('news', { n: 99 })).status, 200, 'and the server goes on');
    assert.equal((await sub.nextPub(10000)).data.n, 99);

    const logged = (srv.stderr.match(LOG_LINE) || []).length;
    t.diagnostic(`${count('refused')} refused, ${held.length} accepted; CPU idle ${idle}, at the limit ${busy} ticks/s; logged ${logged} times`);
    assert.ok(logged >= 1, `the condition is logged:\n${srv.stderr.slice(-2000)}`);
    assert.ok(logged <= 3, `logged once per interval, not per refused connection (${logged} times)`);

    // Descriptors free up: new streams are accepted again.
    for (const s of held) s.close();
    let again = null;
    for (let i = 0; i < 50 && again?.kind !== 'stream'; i++) {
      again = await attempt(srv.base);
      if (again.kind !== 'stream') await delay(100);
    }
    assert.equal(again.kind, 'stream', `a new stream is accepted once descriptors are free (${again.kind}: ${again.why})`);
    await call(again.s, { subscribe: { channel: 'news' }, id: 2 });
    assert.equal((await apiConn.publish('news', { n: 4 })).status, 200);
    await again.s.waitFor((f) => f.push?.pub?.data?.n === 4, 10000);
    assert.equal((await sub.nextPub(10000)).data.n, 4, 'the SDK client is still served');
    apiConn.sock.destroy();
    assert.equal(srv.exited, null, 'streamd is still running');
  });
});

/** Connects to the admin socket and says what happened within 3 s: 'refused' (an error line or the
 * connection closed) or 'hang' (connected, nothing said, still open). */
function adminAttempt(socket) {
  return new Promise((resolve) => {
    const conn = net.createConnection(socket);
    let data = '';
    const done = (kind) => {
      clearTimeout(timer);
      conn.destroy();
      resolve({ kind, data });
    };
    const timer = setTimeout(() => done('hang'), 3000);
    conn.setEncoding('utf8');
    conn.on('data', (d) => { data += d; });
    conn.on('error', () => done('refused'));
    conn.on('close', () => done('refused'));
  });
}

describe('open-files limit on the admin socket', () => {
  let srv, socket;

  before(async () => {
    ({ srv, socket } = await startAdminServer({ ...BASE_CONFIG }));
  });

  after(async () => {
    await stopAll();
    removeAdminDirs();
  });

  it('refuses admin clients past the limit without spinning or logging each, serves them again after', { timeout: 60000 }, async (t) => {
    const pid = srv.child.pid;
    const idle = await cpuOverOneSecond(pid);
    const limit = fdCount(pid) + 4;
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`]);
    // Idle HTTP connections take the last descriptors (the ones past them are refused by the HTTP side).
    const fillers = [];
    for (let i = 0; i < 12; i++) {
      const c = net.connect(srv.port, '127.0.0.1').on('error', () => {});
      fillers.push(c);
      await new Promise((r) => c.once('connect', r).once('error', r));
    }
    await delay(300);
    assert.ok(fdCount(pid) >= limit - 1, `the descriptors are used up (${fdCount(pid)} of ${limit})`);

    const attempts = await Promise.all(Array.from({ length: 10 }, () => adminAttempt(socket)));
    const hung = attempts.filter((a) => a.kind === 'hang').length;
    assert.equal(hung, 0, `no admin client is left connected and unanswered at the limit (${hung} of 10 were; fds ${fdCount(pid)} of ${limit})\n${srv.stderr.slice(-1500)}`);
    for (const a of attempts) if (a.data) assert.match(a.data, /"error"/, 'a refusal says why, as JSON');

    const knockers = Array.from({ length: 3 }, () => net.createConnection(socket).on('error', () => {}));
    const busy = await cpuOverOneSecond(pid);
    knockers.forEach((k) => k.destroy());
    assert.ok(busy <= Math.max(5 * idle, 25), `CPU at the limit (${busy} ticks/s) against idle (${idle} ticks/s): no spinning`);
    const logged = (srv.stderr.match(/admin: out of file descriptors/g) || []).length;
    t.diagnostic(`CPU idle ${idle}, at the limit ${busy} ticks/s; admin logged ${logged} times`);
    assert.ok(logged >= 1 && logged <= 3, `the admin listener logs the condition once per interval (${logged} times):\n${srv.stderr.slice(-1500)}`);

    fillers.forEach((c) => c.destroy());
    let info = null;
    for (let i = 0; i < 50 && !info; i++) {
      try {
        const raw = await rawAdmin(socket);
        info = await raw.request({ cmd: 'info' });
        raw.close();
      } catch {
        await delay(100);
      }
    }
    assert.ok(info && !info.error, `the admin socket answers again once descriptors are free: ${JSON.stringify(info)}`);
    assert.equal(srv.exited, null, 'streamd is still running');
  });
});
