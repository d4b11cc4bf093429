// Helpers for the admin socket tests: a streamd with admin_socket in a fresh temp directory, streamctl
// runs (one-shot, piped stdin, long-running watch) and raw connections to the socket.
//
//   const { srv, socket } = await startAdminServer({ ...BASE_CONFIG });
//   const r = await streamctl(socket, ['sessions', '--channel', 'news']);   // { code, stdout, stderr }
//   const w = watchChannel(socket, 'news'); await w.ready; ...; await w.nextLine(); await w.stop();
//   const raw = await rawAdmin(socket); raw.send('{"cmd":"info"}'); await raw.nextLine(); raw.close();
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, STREAMD_BIN } from './server.js';
import { withTimeout } from './http.js';

export const STREAMCTL_BIN = process.env.STREAMCTL_BIN ||
  path.join(path.dirname(STREAMD_BIN), '..', 'cli', 'streamctl');

const RUN_TIMEOUT_MS = 20000;
const dirs = [];

/** A fresh directory for sockets (short, so the path fits sun_path); removed by removeAdminDirs(). */
export function adminDir() {
  const dir = mkdtempSync(path.join(tmpdir(), 'sdadm-'));
  dirs.push(dir);
  return dir;
}

export function removeAdminDirs() {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Starts streamd with admin_socket at SOCKET (default: admin.sock in a fresh directory). */
export async function startAdminServer(extra = {}, { socket } = {}) {
  const sock = socket || path.join(adminDir(), 'admin.sock');
  const srv = await startServer({ admin_socket: sock, ...extra });
  return { srv, socket: sock };
}

/** Runs streamctl with ARGS (SOCKET via -s unless null). Resolves with { code, signal, stdout, stderr }. */
export function streamctl(socket, args, { input, env = {}, timeoutMs = RUN_TIMEOUT_MS } = {}) {
  const argv = socket === null ? args : ['-s', socket, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(STREAMCTL_BIN, argv, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`streamctl ${argv.join(' ')}: no exit within ${timeoutMs} ms\nstdout:${stdout}\nstderr:${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // streamctl may exit before reading everything
    child.stdin.end(input ?? '');
  });
}

/** Runs streamctl --json ARGS, expects exit 0 and returns the parsed response. */
export async function streamctlJson(socket, args) {
  const r = await streamctl(socket, ['--json', ...args]);
  if (r.code !== 0) throw new Error(`streamctl --json ${args.join(' ')}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout);
}

/** Splits a stream into lines: returns nextLine(timeoutMs) and the lines seen so far. */
function lineReader(stream, what) {
  const lines = [];
  let buf = '';
  let waiters = [];
  let ended = false;
  let next = 0;
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake();
  });
  stream.on('end', () => {
    ended = true;
    wake();
  });
  const nextLine = (timeoutMs = RUN_TIMEOUT_MS) => withTimeout(new Promise((resolve, reject) => {
    const check = () => {
      if (next < lines.length) resolve(lines[next++]);
      else if (ended) reject(new Error(`${what} ended (lines: ${JSON.stringify(lines)})`));
      else waiters.push(check);
    };
    check();
  }), timeoutMs, `a line from ${what}`);
  return { lines, nextLine };
}

/**
 * Starts `streamctl [--json] watch CHANNEL`. w.ready resolves once streamctl announced the watch on
 * stderr (so publications made afterwards are seen); w.nextLine() gives stdout lines; w.stop() sends
 * SIGINT and resolves with { code, signal, stderr }.
 */
export function watchChannel(socket, channel, { json = false } = {}) {
  const args = ['-s', socket, ...(json ? ['--json'] : []), 'watch', channel];
  const child = spawn(STREAMCTL_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
  const ready = withTimeout(new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (c) => {
      stderr += c;
      if (stderr.includes('watching ')) resolve();
    });
    exited.then((r) => reject(new Error(`streamctl watch exited early: ${JSON.stringify(r)}`)));
  }), RUN_TIMEOUT_MS, 'streamctl watch to start');
  const out = lineReader(child.stdout, 'streamctl watch');
  return {
    child,
    ready,
    exited,
    lines: out.lines,
    nextLine: out.nextLine,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      return withTimeout(exited, RUN_TIMEOUT_MS, 'streamctl watch to exit');
    },
  };
}

/** A raw connection to the admin socket: send(text) writes as is, nextLine() reads a response line. */
export async function rawAdmin(socket) {
  const conn = net.createConnection(socket);
  await withTimeout(new Promise((resolve, reject) => {
    conn.once('connect', resolve);
    conn.once('error', reject);
  }), RUN_TIMEOUT_MS, `connect to ${socket}`);
  conn.on('error', () => {});
  const reader = lineReader(conn, 'the admin socket');
  return {
    send: (text) => conn.write(text),
    request: async (obj) => {
      conn.write(JSON.stringify(obj) + '\n');
      return JSON.parse(await reader.nextLine());
    },
    nextLine: reader.nextLine,
    close: () => conn.destroy(),
  };
}
