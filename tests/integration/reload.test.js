// SIGHUP reload (INTERFACE.md "Signals", streamd.conf(5) RELOADING): the reloadable keys (allowed_origins,
// namespaces, api_key, log_level, ...) take effect at once while a connected stream keeps receiving
// publications; a broken file keeps the whole running configuration and logs FILE:LINE; a change of a
// key that needs a restart (port) is reported by name and the server keeps listening where it was.
// Each test rewrites the server's own config file (srv.configFile) and sends SIGHUP, as an operator
// does with `systemctl reload streamd`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, stopAll, configText, STREAMD_BIN, BASE_CONFIG, API_KEY } from './lib/server.js';
import { request, api } from './lib/http.js';
import { connectRaw, openStream, closeAllRaw, call } from './lib/raw.js';

const RELOAD_WAIT_MS = 10000;
const A = 'http://a.example';
const B = 'http://b.example';
const C = 'http://c.example';
const NEW_KEY = 'rotated-api-key';
const SOURCE_DIR = process.env.STREAMD_SOURCE_DIR ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHIPPED_CONF = path.join(SOURCE_DIR, 'etc', 'streamd.conf');

/** The file startServer writes for CFG (port 0 on loopback), so that only what a test changes differs. */
function fileFor(cfg) {
  return configText({ port: 0, address: '127.0.0.1', ...cfg });
}

/** Waits until the server logs a line matching RE after offset FROM of its stderr; returns that part. */
async function logAfter(srv, from, re, timeoutMs = RELOAD_WAIT_MS) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const tail = srv.stderr.slice(Math.min(from, srv.stderr.length));
    if (re.test(tail)) return tail;
    if (srv.exited) {
      throw new Error(`streamd exited (${JSON.stringify(srv.exited)}):\n${srv.stderr.slice(-4000)}`);
    }
    if (Date.now() > until) {
      throw new Error(`no log line matching ${re} within ${timeoutMs} ms; log since:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Writes TEXT over the server's config file, sends SIGHUP and returns what it logged about the reload. */
async function reload(srv, text) {
  writeFileSync(srv.configFile, text);
  const from = srv.stderr.length;
  srv.child.kill('SIGHUP');
  return logAfter(srv, from, /configuration reloaded|reload failed[^\n]*\n/);
}

/** Status of a CORS preflight from ORIGIN on the emulation endpoint (403 = origin not allowed). */
async function preflightStatus(srv, origin) {
  const res = await request(srv.base + '/emulation', {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' },
  });
  return res.status;
}

function publish(srv, channel, data, key = API_KEY) {
  return api(srv.base, 'publish', { channel, data }, { key });
}

/** Publishes DATA on CHANNEL (with API key KEY) and expects stream S to receive it. */
async function expectDelivered(srv, s, channel, data, key = API_KEY) {
  const res = await publish(srv, channel, data, key);
  assert.equal(res.status, 200, `publish: ${res.status} ${res.body}`);
  const push = await s.waitFor((m) => m.push && m.push.channel === channel && m.push.pub);
  assert.deepEqual(push.push.pub.data, data);
}

describe('the shipped etc/streamd.conf', () => {
  after(async () => {
    await stopAll();
  });

  it('passes streamd -t', () => {
    const r = spawnSync(STREAMD_BIN, ['-t', '-c', SHIPPED_CONF], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'configuration ok\n');
  });

  it('reloads unchanged on SIGHUP without asking for a restart', async () => {
    const srv = await startServer(readFileSync(SHIPPED_CONF, 'utf8'));
    const text = readFileSync(srv.configFile, 'utf8');
    const log = await reload(srv, text);
    assert.match(log, /configuration reloaded/);
    assert.doesNotMatch(log, /reload failed|after a restart/);
  });
});

describe('SIGHUP reload', () => {
  let srv;
  let s; // one raw stream connected before the first reload, subscribed to "news"
  const initial = { ...BASE_CONFIG, allowed_origins: [A], log_level: 'info' };

  before(async () => {
    srv = await startServer(initial);
    s = await connectRaw(srv.base);
    const reply = await call(s, { subscribe: { channel: 'news' }, id: 2 });
    assert.deepEqual(reply, { id: 2, subscribe: {}, skipped: [] });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('applies allowed_origins, log_level, api_key, namespaces; a connected stream stays', async () => {
    // Before: B is refused, the API takes the old key, chat:... is an unknown namespace, no debug lines.
    assert.equal(await preflightStatus(srv, A), 204);
    assert.equal(await preflightStatus(srv, B), 403);
    const refused = await openStream(srv.base + '/connection/http_stream', {
      body: JSON.stringify({ connect: { name: 'b' }, id: 1 }), headers: { Origin: B },
    });
    assert.equal(refused.status, 403);
    refused.close();
    await expectDelivered(srv, s, 'news', { n: 1 });
    const chatBefore = await call(s, { subscribe: { channel: 'chat:room' }, id: 3 });
    assert.equal(chatBefore.error && chatBefore.error.code, 102, JSON.stringify(chatBefore));
    assert.doesNotMatch(srv.stderr, /\[debug\]/);

    const log = await reload(srv, fileFor({
      ...initial,
      allowed_origins: [A, B],
      log_level: 'debug',
      api_key: NEW_KEY,
      namespaces: [{ name: 'chat', allow_subscribe_for_client: true }],
    }));
    assert.match(log, /configuration reloaded/);
    assert.doesNotMatch(log, /after a restart/, 'only reloadable keys changed');

    // After: B connects (and, at log level debug, its connect is logged), the new key works and the
    // old one does not, chat:room can be subscribed, and the first stream is still there.
    assert.equal(await preflightStatus(srv, B), 204);
    const from = srv.stderr.length;
    const sb = await connectRaw(srv.base, { headers: { Origin: B } });
    assert.equal(sb.headers['access-control-allow-origin'], B);
    await logAfter(srv, from, new RegExp(`\\[debug\\] session ${sb.session} client ${sb.client} connected`));
    sb.close();
    assert.equal((await publish(srv, 'news', { n: 0 }, API_KEY)).status, 401, 'the old API key is refused');
    assert.equal((await publish(srv, 'news', { n: 2 }, NEW_KEY)).status, 200, 'the new API key works');
    const pub = await s.waitFor((m) => m.push && m.push.channel === 'news' && m.push.pub);
    assert.deepEqual(pub.push.pub.data, { n: 2 }, 'the stream opened before the reload still receives');
    const chatAfter = await call(s, { subscribe: { channel: 'chat:room' }, id: 4 });
    assert.deepEqual(chatAfter.subscribe, {}, JSON.stringify(chatAfter));
    assert.equal(s.ended, false);
  });

  it('keeps the running configuration when the file is broken and logs FILE:LINE', async () => {
    const current = {
      ...initial, allowed_origins: [A, B], log_level: 'debug', api_key: NEW_KEY,
      namespaces: [{ name: 'chat', allow_subscribe_for_client: true }],
    };
    // An unknown key on line 5: allowed_origins above it and log_level below it must not half-apply.
    const unknownKey = 'port = 0;\naddress = "127.0.0.1";\nhttp_stream = true;\n' +
      `allowed_origins = [ "${C}" ];\nno_such_key = 1;\nlog_level = "error";\n`;
    let log = await reload(srv, unknownKey);
    const want = 'reload failed, keeping the running configuration: ' +
      `${srv.configFile}:5: key 'no_such_key': unknown key`;
    assert.ok(log.includes(want), log);
    assert.doesNotMatch(log, /configuration reloaded/);

    // A syntax error (libconfig's own message) on line 3.
    log = await reload(srv, 'port = 0;\naddress = "127.0.0.1";\nhttp_stream = ;\n');
    assert.ok(log.includes(`reload failed, keeping the running configuration: ${srv.configFile}:3: `), log);

    // Still the old configuration: B allowed, C refused, the new key, debug logging, the stream alive.
    assert.equal(await preflightStatus(srv, B), 204);
    assert.equal(await preflightStatus(srv, C), 403);
    const res = await publish(srv, 'news', { n: 3 }, NEW_KEY);
    assert.equal(res.status, 200, res.body);
    const pub = await s.waitFor((m) => m.push && m.push.channel === 'news' && m.push.pub);
    assert.deepEqual(pub.push.pub.data, { n: 3 });
    const from = srv.stderr.length;
    const sd = await connectRaw(srv.base);
    await logAfter(srv, from, /\[debug\] session .* connected/);
    sd.close();

    // The next good file applies again.
    log = await reload(srv, fileFor(current));
    assert.match(log, /configuration reloaded/);
  });

  it('reports a changed port as needing a restart and keeps listening on the old one', async () => {
    const log = await reload(srv, fileFor({
      ...initial,
      port: srv.port === 65000 ? 65001 : 65000,
      allowed_origins: [A, B, C],
      log_level: 'info',
      api_key: NEW_KEY,
      namespaces: [{ name: 'chat', allow_subscribe_for_client: true }],
    }));
    assert.match(log, /\[warn\] reload: 'port' changed; it takes effect after a restart/);
    assert.match(log, /configuration reloaded/);
    // The reloadable part of the same file applied: C is allowed now; the port did not move.
    assert.equal(await preflightStatus(srv, C), 204);
    const res = await api(srv.base, 'info', {}, { key: NEW_KEY });
    assert.equal(res.status, 200, res.body);
    await expectDelivered(srv, s, 'news', { n: 4 }, NEW_KEY);
    assert.equal(s.ended, false, 'no reload dropped the stream');
  });
});

