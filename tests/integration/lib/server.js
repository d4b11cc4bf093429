// Fixture: starts the real streamd binary on a free port with a generated libconfig file and stops it.
//
//   const srv = await startServer({ http_stream: true, client_insecure: true });
//   srv.base            // "http://127.0.0.1:PORT"
//   await srv.stop()    // SIGTERM, resolves with { code, signal, stderr }
//   await stopAll()     // in after(): stops every server still running and throws when one exited uncleanly
//
// The binary is $STREAMD_BIN, else build/server/streamd of the repository this file lives in.
// With STREAMD_TEST_ENGINE=redis every server runs the Redis engine on one redis-server this module
// starts (each server with a prefix of its own, so servers share nothing unless a test says so): the
// memory engine's history, presence and recovery tests then check the Redis engine's semantics.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis } from './redis.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = process.env.STREAMD_SOURCE_DIR || path.resolve(here, '..', '..', '..');
export const STREAMD_BIN = process.env.STREAMD_BIN || path.join(repoRoot, 'build', 'server', 'streamd');

const START_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 20000;
const STDERR_KEEP = 64 * 1024;

// The configuration that most tests start from: streaming on, development mode, an API key.
export const API_KEY = 'test-api-key';
export const BASE_CONFIG = Object.freeze({
  http_stream: true,
  client_insecure: true,
  api_key: API_KEY,
});

const running = new Set();

let sharedRedis = null;
let prefixes = 0;

/** The keys that put a server on the shared redis-server (STREAMD_TEST_ENGINE=redis), else {}. */
async function engineConfig() {
  if (process.env.STREAMD_TEST_ENGINE !== 'redis') return {};
  if (!sharedRedis) sharedRedis = startRedis();
  const redis = await sharedRedis;
  return { engine: 'redis', redis_address: redis.address, redis_prefix: `t${process.pid}x${++prefixes}` };
}

function quote(s) {
  return '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

function scalar(key, v) {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`config ${key}: only integers are supported, got ${v}`);
    return String(v);
  }
  if (typeof v === 'string') return quote(v);
  throw new Error(`config ${key}: unsupported value ${JSON.stringify(v)}`);
}

function group(obj) {
  return '{ ' + Object.entries(obj).map(([k, v]) => `${k} = ${value(k, v)};`).join(' ') + ' }';
}

function value(key, v) {
  if (Array.isArray(v)) {
    // A list of groups (namespaces) is a libconfig list "( {..}, {..} )"; anything else an array.
    if (v.length > 0 && typeof v[0] === 'object' && v[0] !== null) {
      return '( ' + v.map(group).join(', ') + ' )';
    }
    if (key === 'namespaces') return '( )';
    return '[ ' + v.map((x) => scalar(key, x)).join(', ') + ' ]';
  }
  return scalar(key, v);
}

/** Renders a config object as libconfig text; a string is taken as libconfig text verbatim. */
export function configText(cfg) {
  if (typeof cfg === 'string') return cfg;
  return Object.entries(cfg).map(([k, v]) => `${k} = ${value(k, v)};`).join('\n') + '\n';
}

/**
 * Starts streamd. `extra` is an object of config keys (merged over port = 0, address = "127.0.0.1")
 * or libconfig text appended after those two lines.
 */
export async function startServer(extra = {}, { args = [] } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'streamd-test-'));
  const file = path.join(dir, 'streamd.conf');
  let text;
  const engine = await engineConfig();
  if (typeof extra === 'string') {
    text = 'port = 0;\naddress = "127.0.0.1";\n' + extra + '\n';
    if (!/^\s*engine\s*=/m.test(extra)) text += configText(engine);
  } else {
    text = configText({ port: 0, address: '127.0.0.1', ...('engine' in extra ? {} : engine), ...extra });
  }
  writeFileSync(file, text);

  const child = spawn(STREAMD_BIN, ['-c', file, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1' },
  });
  let stderr = '';
  let lineBuf = '';
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.on('error', (err) => {
      stderr += `\n[spawn error: ${err.message}]`;
      exited = { code: null, signal: null, error: err };
      resolve();
    });
  });
  child.stderr.setEncoding('utf8');

  const srv = {
    child,
    configFile: file,
    configText: text,
    port: 0,
    address: '',
    base: '',
    get stderr() {
      return stderr;
    },
    get exited() {
      return exited;
    },
    exitPromise,
    stop: null,
  };
  running.add(srv);

  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`streamd did not log "listening on" within ${START_TIMEOUT_MS} ms.\n` +
        `binary: ${STREAMD_BIN}\nconfig:\n${text}\nstderr:\n${stderr}`));
    }, START_TIMEOUT_MS);
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (stderr.length > STDERR_KEEP * 2) stderr = stderr.slice(-STDERR_KEEP);
      if (srv.port) return;
      lineBuf += chunk;
      let nl;
      while ((nl = lineBuf.indexOf('\n')) >= 0) {
        const line = lineBuf.slice(0, nl);
        lineBuf = lineBuf.slice(nl + 1);
        const m = /listening on ([\d.]+):(\d+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          srv.address = m[1];
          srv.port = Number(m[2]);
          srv.base = `http://${m[1]}:${m[2]}`;
          resolve();
          return;
        }
      }
    });
    exitPromise.then(() => {
      if (!srv.port) {
        clearTimeout(timer);
        reject(new Error(`streamd exited before listening (${JSON.stringify(exited)}).\n` +
          `binary: ${STREAMD_BIN}\nconfig:\n${text}\nstderr:\n${stderr}`));
      }
    });
  });

  let stopping = null;
  srv.stop = (signal = 'SIGTERM') => {
    if (stopping) return stopping;
    stopping = (async () => {
      if (!exited) {
        child.kill(signal);
        let timer;
        const killed = await Promise.race([
          exitPromise.then(() => false),
          new Promise((r) => { timer = setTimeout(() => r(true), STOP_TIMEOUT_MS); }),
        ]);
        clearTimeout(timer);
        if (killed) {
          child.kill('SIGKILL');
          await exitPromise;
          stderr += `\n[test fixture: no exit within ${STOP_TIMEOUT_MS} ms after ${signal}, killed]`;
          exited = { ...exited, timedOut: true };
        }
      }
      running.delete(srv);
      rmSync(dir, { recursive: true, force: true });
      return { code: exited.code, signal: exited.signal, timedOut: !!exited.timedOut, stderr };
    })();
    return stopping;
  };

  try {
    await listening;
  } catch (err) {
    await srv.stop('SIGKILL');
    throw err;
  }
  return srv;
}

/** True when a sanitizer complained in STDERR. */
export function sanitizerReport(stderr) {
  return /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|ThreadSanitizer/.test(stderr);
}

/**
 * Stops every server still running (SIGTERM) and throws if one of them did not exit with code 0
 * promptly or reported a sanitizer error. Use it in after().
 */
export async function stopAll() {
  const problems = [];
  for (const srv of [...running]) {
    const r = await srv.stop('SIGTERM');
    if (r.code !== 0 || r.timedOut || sanitizerReport(r.stderr)) {
      problems.push(`streamd on ${srv.base}: exit ${JSON.stringify({ code: r.code, signal: r.signal, timedOut: r.timedOut })}\n` +
        `stderr (tail):\n${r.stderr.slice(-8000)}`);
    }
  }
  if (sharedRedis) {
    const redis = await sharedRedis;
    sharedRedis = null;
    await redis.stop();
  }
  if (problems.length) throw new Error('unclean server exit:\n' + problems.join('\n'));
}

// Never leave a server behind, whatever happens to the test process.
process.on('exit', () => {
  for (const srv of running) {
    try {
      srv.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});
