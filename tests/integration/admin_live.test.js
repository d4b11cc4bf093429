// streamctl's live views against the real binaries: `trace ID` (every frame to and from one session,
// decoded, in order, with the emulation POSTs and the final disconnect code; a trace reader that does not
// read never slows the session and is told what was dropped) and `top` (its non-terminal output: one
// block per interval, with rates that follow the traffic, and the busiest channels).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Centrifuge as CentrifugePb } from 'centrifuge/build/protobuf';
import { stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { api, delay, withTimeout } from './lib/http.js';
import { connectedClient, subscribe, closeAllClients, once } from './lib/sdk.js';
import { startAdminServer, streamctl, streamctlJson, rawAdmin, removeAdminDirs, STREAMCTL_BIN } from './lib/admin.js';
import { startRedis, stopAllRedis, redisAvailable } from './lib/redis.js';
import { openWsRaw, closeAllWsRaw } from './lib/wsraw.js';

const WAIT_MS = 20000;

/** Lines of a child's stdout as they come: next(pred) resolves with the first line (parsed JSON when
 * JSON is set) from the reading position on that satisfies PRED, skipping the others. */
function lines(child, { json }) {
  const seen = [];
  let buf = '';
  let waiters = [];
  let ended = false;
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      seen.push(json ? JSON.parse(line) : line);
    }
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  child.stdout.on('end', () => {
    ended = true;
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  let pos = 0;
  const next = (pred = () => true, what = 'a line') => withTimeout(new Promise((resolve, reject) => {
    const check = () => {
      while (pos < seen.length) {
        const l = seen[pos++];
        if (pred(l)) return resolve(l);
      }
      if (ended) return reject(new Error(`stdout ended before ${what}: ${JSON.stringify(seen).slice(-2000)}`));
      waiters.push(check);
    };
    check();
  }), WAIT_MS, what);
  return { seen, next };
}

/** Starts `streamctl [--json] trace ID`; resolves once it announced the trace on stderr. */
async function startTrace(socket, id, { json = true } = {}) {
  const child = spawn(STREAMCTL_BIN, ['-s', socket, ...(json ? ['--json'] : []), 'trace', id],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
  const out = lines(child, { json });
  await withTimeout(new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (c) => {
      stderr += c;
      if (stderr.includes('tracing client')) resolve();
    });
    exited.then((r) => reject(new Error(`streamctl trace exited early: ${JSON.stringify(r)}`)));
  }), WAIT_MS, 'streamctl trace to start');
  return { child, exited, ...out, stderr: () => stderr };
}

/** The first trace line at or after the reading position that is DIR/TYPE and whose frame passes PRED. */
function frame(t, dir, type, pred = () => true) {
  return t.next((l) => l.dir === dir && l.type === type && pred(l.frame || {}, l), `${dir} ${type}`);
}

/** Checks the fields every frame line of a trace carries. */
function assertFrameLine(l, transport) {
  assert.ok(Number.isInteger(l.time_ms) && Math.abs(l.time_ms - Date.now()) < 60000, `a unix time: ${l.time_ms}`);
  assert.equal(l.transport, transport);
  assert.ok(Number.isInteger(l.size) && l.size > 0, `a size: ${JSON.stringify(l)}`);
}

describe('streamctl trace', () => {
  let srv;
  let socket;

  before(async () => {
    ({ srv, socket } = await startAdminServer({
      ...BASE_CONFIG, ping_interval: '2s', pong_timeout: '1s', client_queue_max_size: 64 * 1024 * 1024,
    }));
  });

  after(async () => {
    closeAllClients();
    await stopAll();
    removeAdminDirs();
  });

  it('shows a scripted SDK session frame by frame, in order, decoded, until its disconnect code', async () => {
    const c = await connectedClient(srv.base);
    const t = await startTrace(socket, c.connectedCtx.client);
    const ack = await t.next();
    assert.equal(ack.result.tracing.client, c.connectedCtx.client);
    assert.equal(ack.result.tracing.transport, 'http_stream');
    assert.equal(ack.result.tracing.protocol, 'json');
    assert.ok(ack.result.tracing.limits.queue_events > 0 && ack.result.tracing.limits.traces > 0);

    const sub = await subscribe(c, 'news');
    const post = await t.next((l) => l.type === 'emulation', 'the subscribe POST');
    assert.equal(post.dir, 'in');
    assert.equal(post.status, 204);
    assertFrameLine(post, 'http_stream');
    const subCmd = await frame(t, 'in', 'command', (f) => f.subscribe && f.subscribe.channel === 'news');
    assertFrameLine(subCmd, 'http_stream');
    const subReply = await frame(t, 'out', 'reply', (f) => f.id === subCmd.frame.id && f.subscribe);
    assertFrameLine(subReply, 'http_stream');

    await sub.publish({ text: 'traced' });
    await sub.nextPub();
    const pubCmd = await frame(t, 'in', 'command', (f) => f.publish && f.publish.data.text === 'traced');
    const push = await frame(t, 'out', 'push', (f) => f.push.channel === 'news' && f.push.pub.data.text === 'traced');
    const pubReply = await frame(t, 'out', 'reply', (f) => f.id === pubCmd.frame.id);
    assert.ok(pubCmd.time_ms <= push.time_ms && push.time_ms <= pubReply.time_ms, 'timestamps in order');

    // The server pings every 2 s; the SDK answers with a pong in an emulation POST.
    const ping = await frame(t, 'out', 'ping');
    assert.deepEqual(ping.frame, {});
    const pongPost = await t.next((l) => l.type === 'emulation', 'the pong POST');
    assert.equal(pongPost.status, 204);
    const pong = await frame(t, 'in', 'pong');
    assert.deepEqual(pong.frame, {});

    const dis = await streamctl(socket, ['disconnect', c.connectedCtx.client, '--code', '4321', '--reason', 'bye']);
    assert.equal(dis.code, 0, dis.stderr);
    const push2 = await frame(t, 'out', 'disconnect');
    assert.deepEqual(push2.frame.push.disconnect, { code: 4321, reason: 'bye' });
    const end = await t.next((l) => l.type === 'end', 'the end line');
    assert.equal(end.code, 4321);
    assert.equal(end.dropped, 0);
    const r = await t.exited;
    assert.equal(r.code, 0, r.stderr);
  });

  it('shows a protobuf client\'s frames as their JSON form', async () => {
    const c = new CentrifugePb([{ transport: 'http_stream', endpoint: srv.base + '/connection/http_stream' }],
      { emulationEndpoint: srv.base + '/emulation', minReconnectDelay: 200 });
    const connected = once(c, 'connected');
    c.connect();
    const ctx = await connected;
    try {
      const t = await startTrace(socket, ctx.client);
      const ack = await t.next();
      assert.equal(ack.result.tracing.protocol, 'protobuf');
      const sub = c.newSubscription('pbnews');
      const subscribed = once(sub, 'subscribed');
      sub.subscribe();
      await subscribed;
      const cmd = await frame(t, 'in', 'command', (f) => f.subscribe && f.subscribe.channel === 'pbnews');
      assertFrameLine(cmd, 'http_stream');
      await frame(t, 'out', 'reply', (f) => f.id === cmd.frame.id && f.subscribe);
      const res = await api(srv.base, 'publish', { channel: 'pbnews', data: { n: 7 } }, { key: API_KEY });
      assert.deepEqual(res.json, { result: {} });
      const push = await frame(t, 'out', 'push', (f) => f.push.channel === 'pbnews');
      assert.ok(push.frame.push.pub, 'a publication push');
      // Protobuf clients carry data as bytes; a JSON payload is shown as the JSON it is.
      assert.deepEqual(push.frame.push.pub.data, { n: 7 });
      c.disconnect(); // the stream ends: the client went away (3000)
      const end = await t.next((l) => l.type === 'end', 'the end line');
      assert.equal(end.code, 3000);
      assert.equal((await t.exited).code, 0);
    } finally {
      c.disconnect();
    }
  });

  it('traces a WebSocket session: commands from its messages, the Disconnect as the Close frame', async () => {
    const ws = await openWsRaw(srv.port);
    ws.send(0x1, '{"id":1,"connect":{"name":"raw"}}');
    const connect = JSON.parse((await ws.nextFrame()).payload.toString());
    const t = await startTrace(socket, connect.connect.client);
    assert.equal((await t.next()).result.tracing.transport, 'websocket');
    ws.send(0x1, '{"id":2,"subscribe":{"channel":"wsnews"}}\n{"id":3,"subscribe":{"channel":"wsother"}}');
    const first = await frame(t, 'in', 'command', (f) => f.subscribe && f.subscribe.channel === 'wsnews');
    assertFrameLine(first, 'websocket');
    // two commands in one message: two lines, in order
    await frame(t, 'in', 'command', (f) => f.subscribe && f.subscribe.channel === 'wsother');
    await frame(t, 'out', 'reply', (f) => f.id === 2);
    await frame(t, 'out', 'reply', (f) => f.id === 3);
    await streamctl(socket, ['disconnect', connect.connect.client, '--code', '4100', '--reason', 'done']);
    const close = await frame(t, 'out', 'disconnect');
    assert.deepEqual(close.frame, { close: { code: 4100, reason: 'done' } });
    assert.equal((await t.next((l) => l.type === 'end', 'the end line')).code, 4100);
    assert.equal((await t.exited).code, 0);
    closeAllWsRaw();
  });

  it('prints frames for humans without --json and refuses an unknown session', async () => {
    const c = await connectedClient(srv.base);
    const rows = (await streamctlJson(socket, ['sessions'])).result.sessions;
    const session = rows.find((r) => r.client === c.connectedCtx.client).session;
    const t = await startTrace(socket, session, { json: false }); // by session id this time
    await subscribe(c, 'human');
    const line = await t.next((l) => /\sin\s+http_stream\s.*\scommand\s+\{.*"subscribe":\{"channel":"human"/.test(l),
      'a subscribe line');
    assert.match(line, /^\d\d:\d\d:\d\d\.\d{3}\s+in\s+http_stream\s+\d+ B\s+command\s+/);
    await t.next((l) => /\sin\s+http_stream\s.*\semulation\s+POST answered 204$/.test(l) || /\sout\s+http_stream\s.*\sreply\s+/.test(l),
      'an emulation or reply line');
    await streamctl(socket, ['disconnect', c.connectedCtx.client]);
    await t.next((l) => /\send\s+disconnect code 3503$/.test(l), 'the end line');
    assert.equal((await t.exited).code, 0);

    const c2 = await connectedClient(srv.base);
    const t2 = await startTrace(socket, c2.connectedCtx.client, { json: false });
    t2.child.kill('SIGINT'); // Ctrl-C ends a trace before its session does
    assert.equal((await t2.exited).code, 0);

    const none = await streamctl(socket, ['trace', 'no-such-id']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no such session on this node: no-such-id/);
  });

  it('a trace reader that stalls does not slow the session, and is told how many events were dropped', async () => {
    const c = await connectedClient(srv.base);
    const sub = await subscribe(c, 'flood');
    const conn = net.createConnection(socket);
    await once(conn, 'connect');
    conn.setEncoding('utf8');
    let text = '';
    const onData = (chunk) => { text += chunk; };
    conn.on('data', onData);
    conn.write(JSON.stringify({ cmd: 'trace', args: { id: c.connectedCtx.client } }) + '\n');
    await withTimeout((async () => { while (!text.includes('\n')) await delay(10); })(), WAIT_MS, 'the ack');
    assert.ok(JSON.parse(text.split('\n')[0]).result.tracing);
    conn.pause(); // from here on the trace's reader reads nothing

    const payload = 'x'.repeat(4000);
    const total = 3000;
    for (let i = 0; i < total; i += 250) {
      const commands = [];
      for (let k = i; k < i + 250; k++) commands.push({ publish: { channel: 'flood', data: { k, payload } } });
      const res = await api(srv.base, 'batch', { commands }, { key: API_KEY });
      assert.equal(res.status, 200);
    }
    // Everything reaches the session while the trace is stalled.
    await withTimeout((async () => { while (sub.pubs.length < total) await delay(20); })(), WAIT_MS,
      `all ${total} publications (got ${sub.pubs.length})`);
    assert.deepEqual(sub.pubs.map((p) => p.data.k), [...Array(total).keys()]);

    conn.resume();
    const report = (await withTimeout((async () => {
      for (;;) {
        const l = text.split('\n').find((x) => x.includes('"type":"dropped"'));
        if (l) return JSON.parse(l);
        await delay(20);
      }
    })(), WAIT_MS, 'a dropped line'));
    assert.ok(report.count > 0, JSON.stringify(report));
    await streamctl(socket, ['disconnect', c.connectedCtx.client]);
    const end = await withTimeout((async () => {
      for (;;) {
        const l = text.split('\n').find((x) => x.includes('"type":"end"'));
        if (l) return JSON.parse(l);
        await delay(20);
      }
    })(), WAIT_MS, 'the end line');
    assert.equal(end.code, 3503);
    assert.ok(end.dropped >= report.count);
    conn.destroy();
  });
});

describe('streamctl top', () => {
  let srv;
  let socket;

  before(async () => {
    ({ srv, socket } = await startAdminServer({ ...BASE_CONFIG }));
  });

  after(async () => {
    closeAllClients();
    await stopAll();
    removeAdminDirs();
  });

  /** Starts `streamctl top ARGS` with stdout a pipe (not a terminal). */
  function startTop(args) {
    const child = spawn(STREAMCTL_BIN, ['-s', socket, 'top', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
    const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
    return { child, exited, ...lines(child, { json: false }) };
  }

  /** The block of lines of one interval, from its header on. */
  async function block(top) {
    await top.next((l) => l.startsWith('--- top '), 'a block header');
    const out = [];
    for (;;) {
      const l = await top.next();
      out.push(l);
      if (/^\s+CHANNEL\s+PUBS\/S\s+SUBSCRIBERS$/.test(l)) break;
    }
    return out;
  }

  it('prints one block per interval, with rates that follow the traffic and the busiest channels', async () => {
    const c = await connectedClient(srv.base);
    const busy = await subscribe(c, 'busy');
    await subscribe(c, 'quiet');
    let publishing = true;
    const loop = (async () => {
      while (publishing) {
        await api(srv.base, 'publish', { channel: 'busy', data: { t: Date.now() } }, { key: API_KEY });
        await delay(10);
      }
    })();
    const top = startTop(['--interval', '300ms', '--channels', '1']);
    try {
      await block(top); // the first block may start before the loop got going
      const lines2 = await block(top);
      const text = lines2.join('\n');
      assert.match(text, /^node \S+/m);
      assert.match(text, /^ {2}sessions 1: http_stream\/json 1$/m);
      assert.match(text, /^ {2}messages\/s in [\d.]+ out [\d.]+$/m);
      assert.match(text, /^ {2}bytes\/s in .+ out .+$/m);
      assert.match(text, /^ {2}emulation\/s [\d.]+/m);
      assert.match(text, /^ {2}queue drops 0$/m);
      assert.match(text, /^ {2}disconnects \d+/m);
      const pubs = Number(text.match(/^ {2}publications\/s ([\d.]+)$/m)[1]);
      assert.ok(pubs > 0, `publications/s during a publish loop: ${text}`);
      const outRate = Number(text.match(/^ {2}messages\/s in [\d.]+ out ([\d.]+)$/m)[1]);
      assert.ok(outRate > 0, text);
      // --channels 1: only the busiest channel, with its subscriber count
      const rows = await top.next((l) => /^ {2}\S+\s+[\d.]+\s+\d+$/.test(l), 'a channel row');
      assert.match(rows, /^ {2}busy\s+[\d.]+\s+1$/);
      assert.ok(Number(rows.trim().split(/\s+/)[1]) > 0, rows);
      const after = await top.next((l) => l.startsWith('--- top ') || /^ {2}quiet\s/.test(l), 'the next block');
      assert.ok(after.startsWith('--- top '), `one channel row only, not: ${after}`);
    } finally {
      publishing = false;
      await loop;
      busy.unsubscribe();
    }
    top.child.kill('SIGINT');
    const r = await top.exited;
    assert.equal(r.code, 0, r.stderr);

    // Publishing stopped: the next blocks show no publications.
    const top2 = startTop(['--interval', '200ms']);
    await block(top2);
    const quiet = (await block(top2)).join('\n');
    assert.match(quiet, /^ {2}publications\/s 0\.0$/m);
    top2.child.kill('SIGTERM');
    assert.equal((await top2.exited).code, 0);
  });

  it('on a terminal (script -qfc): full screen, redrawn in place, q quits and restores the terminal', async () => {
    const cmd = `${STREAMCTL_BIN} -s ${socket} top --interval 200ms --channels 3`;
    const child = spawn('script', ['-qfc', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c) => { out += c; });
    const exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
    const frames = () => out.split('\x1b[H').length - 1;
    await withTimeout((async () => { while (frames() < 3) await delay(20); })(), WAIT_MS, `three frames, got: ${out}`);
    assert.ok(out.startsWith('\x1b[?1049h\x1b[?25l'), 'the alternate screen, the cursor hidden');
    assert.match(out, /\x1b\[H--- top .* \(q quits\) ---\x1b\[K\r\n/);
    assert.match(out, /messages\/s in [\d.]+ out [\d.]+\x1b\[K/);
    assert.match(out, /\x1b\[J/);
    child.stdin.write('q');
    assert.equal(await withTimeout(exited, WAIT_MS, 'top to quit on q'), 0);
    assert.ok(out.endsWith('\x1b[?25h\x1b[?1049l'), `the terminal restored: ${JSON.stringify(out.slice(-40))}`);

    // A small window: every frame fits it (4 rows of at most 30 columns), so the redraw never scrolls.
    const small = spawn('script', ['-qfc', `stty rows 4 cols 30; ${cmd}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let text = '';
    small.stdout.setEncoding('utf8').on('data', (c) => { text += c; });
    const done = new Promise((resolve) => small.on('close', (code) => resolve(code)));
    await withTimeout((async () => { while (text.split('\x1b[H').length < 4) await delay(20); })(), WAIT_MS, 'frames');
    small.stdin.write('q');
    assert.equal(await withTimeout(done, WAIT_MS, 'top to quit'), 0);
    for (const f of text.split('\x1b[H').slice(1, -1)) {
      const rows = f.replace(/\x1b\[J.*$/s, '').split('\x1b[K').map((r) => r.replace(/\r?\n/g, '')).filter((r) => r !== '');
      assert.ok(rows.length <= 4, `at most 4 rows: ${JSON.stringify(rows)}`);
      for (const r of rows) assert.ok(r.length <= 30, `at most 30 columns: ${JSON.stringify(r)}`);
    }
  });

  it('--json prints every sample as the server sent it; a bad --interval is a usage error', async () => {
    const r = await streamctl(socket, ['top', '--interval', '5ms']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--interval must be a duration from 100ms to 1h/);
    const child = spawn(STREAMCTL_BIN, ['-s', socket, '--json', 'top', '--interval', '100ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = lines(child, { json: true });
    const sample = await out.next();
    const node = sample.nodes[0];
    for (const key of ['uid', 'uptime_ms', 'messages_in', 'messages_out', 'bytes_in', 'bytes_out', 'publications',
      'queue_drops', 'connections']) assert.ok(key in node, `${key} in ${JSON.stringify(node)}`);
    assert.equal(typeof node.emulation['204'], 'number');
    assert.equal(typeof node.disconnects['3000'], 'number');
    assert.ok(Array.isArray(node.channels));
    child.kill('SIGINT');
  });
});

describe('streamctl top across the nodes of the Redis engine', { skip: !redisAvailable && 'redis-server is not installed' }, () => {
  let a;
  let b;
  let socketA;

  before(async () => {
    const redis = await startRedis();
    const cfg = { ...BASE_CONFIG, engine: 'redis', redis_address: redis.address, redis_prefix: `top${process.pid}` };
    [{ srv: a, socket: socketA }, { srv: b }] = await Promise.all([startAdminServer(cfg), startAdminServer(cfg)]);
  });

  after(async () => {
    closeAllClients();
    await stopAll();
    await stopAllRedis();
    removeAdminDirs();
  });

  it('shows every node, each with its own sessions, rates and channels', async () => {
    const c = await connectedClient(b.base);
    await subscribe(c, 'onb');
    let publishing = true;
    const loop = (async () => {
      while (publishing) {
        await api(b.base, 'publish', { channel: 'onb', data: 1 }, { key: API_KEY });
        await delay(10);
      }
    })();
    const child = spawn(STREAMCTL_BIN, ['-s', socketA, '--json', 'top', '--interval', '200ms'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const out = lines(child, { json: true });
      // A learns of B from B's heartbeats: wait for a sample with both.
      const sample = await out.next((l) => l.nodes.length === 2, 'a sample of two nodes');
      const [first, second] = sample.nodes;
      const bInfo = (await api(b.base, 'info', {}, { key: API_KEY })).json.result.nodes[0];
      assert.notEqual(first.uid, bInfo.uid, 'this node first');
      assert.equal(second.uid, bInfo.uid);
      assert.deepEqual(second.sessions, { http_stream: { json: 1 } });
      assert.deepEqual(first.sessions, {});
      const row = second.channels.find((r) => r.channel === 'onb');
      assert.equal(row.subscribers, 1);
      const later = await out.next((l) => l.nodes.length === 2 &&
        l.nodes[1].channels.find((r) => r.channel === 'onb').publications > row.publications, 'more publications on B');
      assert.ok(later.nodes[1].publications > second.publications);
    } finally {
      publishing = false;
      await loop;
      child.kill('SIGINT');
    }
  });

  it('lists a node that does not answer in time, from its last heartbeat', async () => {
    const admin = await rawAdmin(socketA); // one request, one sample (streamctl top would go on)
    const seen = await admin.request({ cmd: 'top' });
    assert.equal(seen.result.nodes.length, 2);
    b.child.kill('SIGSTOP'); // B stops answering; its heartbeat is still fresh
    try {
      const r = await admin.request({ cmd: 'top' });
      assert.equal(r.result.nodes.length, 2);
      const silent = r.result.nodes[1];
      assert.equal(silent.uid, seen.result.nodes[1].uid);
      assert.equal(silent.answered, false);
      assert.ok(Number.isInteger(silent.num_clients)); // as its last heartbeat said
    } finally {
      b.child.kill('SIGCONT');
      admin.close();
    }
  });
});
