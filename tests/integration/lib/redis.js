// Fixture: a real redis-server on a free loopback port, no persistence, for the Redis-engine tests.
//
//   const redis = await startRedis();   // { port, address: "127.0.0.1:PORT", stop(), restart() }
//   redisAvailable                      // false when redis-server is not installed: skip those tests
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { delay, freePort } from './http.js';

export const REDIS_SERVER = '/usr/bin/redis-server';
export const redisAvailable = existsSync(REDIS_SERVER);

const started = new Set();

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
      const answer = await redisCommand(port, 'PING', 500);
      if (answer === '+PONG' || answer.startsWith('-NOAUTH')) return; // up (with requirepass: up and locked)
    } catch { /* not yet */ }
    await delay(25);
  }
  throw new Error(`redis-server on ${port} did not start`);
}

/** Sends one inline command and resolves with everything the server said within IDLE_MS of quiet. */
export function redisText(port, line, idleMs = 150) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    let timer = null;
    const done = () => { sock.destroy(); resolve(buf); };
    sock.on('connect', () => { sock.write(line + '\r\n'); timer = setTimeout(done, 2000); });
    sock.on('data', (d) => { buf += d; clearTimeout(timer); timer = setTimeout(done, idleMs); });
    sock.on('error', reject);
  });
}

/** Starts redis-server; PORT reuses a port (for a restart); ARGS are extra command-line options. */
export async function startRedis({ port, args = [], config = null } = {}) {
  port = port || await freePort();
  const pre = config ? [config] : [];
  // A replica's full sync writes an RDB file even with --save '': keep it in a temporary folder, not the
  // test's working directory.
  const dir = mkdtempSync(path.join(tmpdir(), 'streamd-redis-'));
  const child = spawn(REDIS_SERVER, [...pre, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning', ...args], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const r = {
    port,
    address: `127.0.0.1:${port}`,
    child,
    async stop() {
      started.delete(r);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await r.stop();
      const again = await startRedis({ port, args, config });
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

/**
 * A master, one replica and one Sentinel (quorum 1, a master is down after 1 s) watching it as
 * MASTER_NAME. Resolves once the replica is in sync.
 */
export async function startSentinelSetup(masterName = 'streamd-master') {
  const master = await startRedis();
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
  for (let i = 0; i < 200 && !(await redisText(replica.port, 'INFO replication')).includes('master_link_status:up'); i++) {
    await delay(50);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'streamd-sentinel-'));
  const conf = path.join(dir, 'sentinel.conf');
  writeFileSync(conf, [
    `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`,
    `sentinel down-after-milliseconds ${masterName} 1000`,
    `sentinel failover-timeout ${masterName} 5000`,
    '',
  ].join('\n'));
  const sentinel = await startRedis({ config: conf, args: ['--sentinel'] });
  return { master, replica, sentinel, masterName, sentinelAddress: sentinel.address };
}

/** The master's port the Sentinel on PORT names for MASTER_NAME. */
export async function sentinelMasterPort(port, masterName) {
  const text = await redisText(port, `SENTINEL get-master-addr-by-name ${masterName}`);
  const m = text.match(/\$\d+\r\n[^\r]+\r\n\$\d+\r\n(\d+)\r\n/);
  return m ? Number(m[1]) : 0;
}

// Never leave a redis-server behind, whatever happens to the test process.
process.on('exit', () => {
  for (const r of started) {
    try {
      r.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});
