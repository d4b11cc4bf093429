// Fixture: a real redis-server on a free loopback port, no persistence, for the Redis-engine tests.
//
//   const redis = await startRedis();   // { port, address: "127.0.0.1:PORT", stop(), restart() }
//   redisAvailable                      // false when redis-server is not installed: skip those tests
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { delay } from './http.js';

export const REDIS_SERVER = '/usr/bin/redis-server';
export const redisAvailable = existsSync(REDIS_SERVER);

const started = new Set();

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Sends one inline command and resolves with the first reply line (or rejects). */
export function redisCommand(port, line, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${line}: timeout`)); }, timeoutMs);
    sock.on('connect', () => sock.write(line + '\r\n'));
    sock.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) {
        clearTimeout(timer);
        sock.end();
        resolve(buf.slice(0, buf.indexOf('\r\n')));
      }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

async function waitReady(port) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await redisCommand(port, 'PING', 500)) === '+PONG') return;
    } catch { /* not yet */ }
    await delay(25);
  }
  throw new Error(`redis-server on ${port} did not start`);
}

/** Starts redis-server; PORT reuses a port (for a restart). */
export async function startRedis({ port } = {}) {
  port = port || await freePort();
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const r = {
    port,
    address: `127.0.0.1:${port}`,
    child,
    async stop() {
      started.delete(r);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async restart() {
      await r.stop();
      const again = await startRedis({ port });
      Object.assign(r, { child: again.child, stop: again.stop, restart: again.restart });
      return r;
    },
  };
  started.add(r);
  await waitReady(port);
  return r;
}

/** Stops every redis-server this module started (use in after()). */
export async function stopAllRedis() {
  for (const r of [...started]) await r.stop();
}
