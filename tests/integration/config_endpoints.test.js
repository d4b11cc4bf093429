// Endpoint configuration: http_stream on/off, custom handler prefixes, exact path matching; and the
// command line a user meets first (-t, unknown keys, -p, -V, -h).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, stopAll, BASE_CONFIG, API_KEY, STREAMD_BIN, configText } from './lib/server.js';
import { request, postJSON, api } from './lib/http.js';
import { connectRaw, openStream, closeAllRaw, call } from './lib/raw.js';
import { connectedClient, subscribe, closeAllClients } from './lib/sdk.js';

describe('http_stream = false (the default)', () => {
  let srv;

  before(async () => {
    // No http_stream key at all: the default must be off.
    srv = await startServer({ client_insecure: true, api_key: API_KEY });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('the stream and emulation endpoints answer 404', async () => {
    const s = await openStream(srv.base + '/connection/http_stream', { body: JSON.stringify({ connect: {}, id: 1 }) });
    assert.equal(s.status, 404);
    s.close();
    const e = await postJSON(srv.base + '/emulation', { session: 'x', node: 'y', data: '{}' });
    assert.equal(e.status, 404);
    const o = await request(srv.base + '/emulation', { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'POST' } });
    assert.equal(o.status, 404);
  });

  it('the server API still works', async () => {
    const r = await api(srv.base, 'publish', { channel: 'x', data: { a: 1 } }, { key: API_KEY });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { result: {} });
  });
});

describe('http_stream = false set explicitly', () => {
  let srv;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, http_stream: false });
  });

  after(async () => {
    await stopAll();
  });

  it('the stream endpoint answers 404', async () => {
    const r = await postJSON(srv.base + '/connection/http_stream', { connect: {}, id: 1 });
    assert.equal(r.status, 404);
  });
});

describe('custom handler prefixes', () => {
  let srv;
  const STREAM = '/rt/stream';
  const EMU = '/rt/emu';
  const API = '/srv/api';

  before(async () => {
    srv = await startServer({
      ...BASE_CONFIG,
      http_stream_handler_prefix: STREAM,
      emulation_handler_prefix: EMU,
      api_handler_prefix: API,
    });
  });

  after(async () => {
    closeAllClients();
    closeAllRaw();
    await stopAll();
  });

  it('the SDK connects, subscribes and publishes through the custom paths', async () => {
    const c = await connectedClient(srv.base, { streamPath: STREAM, emulationPath: EMU });
    const sub = await subscribe(c, 'custom');
    await sub.publish({ via: 'custom prefixes' });
    assert.deepEqual((await sub.nextPub()).data, { via: 'custom prefixes' });
    const r = await api(srv.base, 'publish', { channel: 'custom', data: { via: 'custom api' } }, { key: API_KEY, prefix: API });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { result: {} });
    assert.deepEqual((await sub.nextPub()).data, { via: 'custom api' });
    c.disconnect();
  });

  it('the default paths answer 404', async () => {
    const s = await openStream(srv.base + '/connection/http_stream', { body: JSON.stringify({ connect: {}, id: 1 }) });
    assert.equal(s.status, 404);
    s.close();
    const raw = await connectRaw(srv.base, { streamPath: STREAM, emulationPath: EMU });
    const e = await raw.emulate([{ subscribe: { channel: 'x' }, id: 2 }], { url: srv.base + '/emulation' });
    assert.equal(e.status, 404);
    const a = await api(srv.base, 'publish', { channel: 'x', data: 1 }, { key: API_KEY });
    assert.equal(a.status, 404);
    // The subscribe sent to the wrong path did not run.
    assert.deepEqual(await call(raw, { subscribe: { channel: 'x' }, id: 3 }), { id: 3, subscribe: {}, skipped: [] });
    raw.close();
  });
});

describe('path matching', () => {
  let srv;

  before(async () => {
    srv = await startServer({ ...BASE_CONFIG });
  });

  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  it('a query string is ignored', async () => {
    const s = await connectRaw(srv.base, { streamPath: '/connection/http_stream?cf_protocol=json', emulationPath: '/emulation?x=1' });
    assert.deepEqual(await call(s, { subscribe: { channel: 'q' }, id: 2 }), { id: 2, subscribe: {}, skipped: [] });
    s.close();
  });

  it('a sub-path of an endpoint and an unknown path answer 404', async () => {
    for (const p of ['/connection/http_stream/extra', '/emulation/x', '/nothing-here', '/']) {
      const r = await postJSON(srv.base + p, { connect: {}, id: 1 });
      assert.equal(r.status, 404, p);
    }
  });
});

describe('command line', () => {
  let dir;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'streamd-cli-'));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function run(args, configBody) {
    const file = path.join(dir, `c${Math.random().toString(36).slice(2)}.conf`);
    if (configBody !== undefined) writeFileSync(file, configBody);
    const r = spawnSync(STREAMD_BIN, args.map((a) => (a === '@' ? file : a)), { encoding: 'utf8', timeout: 20000 });
    return { ...r, out: (r.stdout || '') + (r.stderr || ''), file };
  }

  it('-t with a valid file prints "configuration ok" and exits 0', () => {
    const r = run(['-t', '-c', '@'], configText({ ...BASE_CONFIG, port: 0, ping_interval: '10s', namespaces: [{ name: 'chat', allow_subscribe_for_client: true }] }));
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /configuration ok/);
  });

  it('-t with an unknown key names the file, the line and the key, and exits 1', () => {
    const r = run(['-t', '-c', '@'], 'http_stream = true;\nport = 0;\nno_such_key = 5;\n');
    assert.equal(r.status, 1, r.out);
    assert.ok(r.out.includes(`${path.basename(r.file)}:3`), `file:line in ${JSON.stringify(r.out)}`);
    assert.match(r.out, /no_such_key/);
  });

  it('-t with a value of the wrong type names the key', () => {
    const r = run(['-t', '-c', '@'], 'port = 0;\nhttp_stream = "yes";\n');
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /:2/);
    assert.match(r.out, /http_stream/);
  });

  it('a missing named config file is an error', () => {
    const r = spawnSync(STREAMD_BIN, ['-c', path.join(dir, 'does-not-exist.conf')], { encoding: 'utf8', timeout: 20000 });
    assert.notEqual(r.status, 0);
    assert.equal(r.signal, null);
  });

  it('-V prints the version and -h the usage, both exit 0', () => {
    const v = run(['-V']);
    assert.equal(v.status, 0, v.out);
    assert.match(v.out, /\d+\.\d+\.\d+/);
    const h = run(['-h']);
    assert.equal(h.status, 0, h.out);
    assert.match(h.out, /--config/);
    assert.match(h.out, /--test-config/);
  });

  it('-p overrides the port of the config file', async () => {
    const srv = await startServer({ ...BASE_CONFIG, port: 1 }, { args: ['-p', '0'] });
    try {
      assert.ok(srv.port > 1);
      const s = await connectRaw(srv.base);
      s.close();
    } finally {
      const r = await srv.stop();
      assert.equal(r.code, 0, r.stderr);
    }
  });
});
