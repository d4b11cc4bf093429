// Fixture: Debian's nginx, unprivileged on loopback, running the server block of etc/nginx-cluster.conf
// (the shipped example, with its upstream servers and listen port replaced), so the example is what the
// tests exercise. nginxAvailable is false when nginx is not installed: skip those tests.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { delay, freePort } from './http.js';

export const NGINX = '/usr/sbin/nginx';
export const nginxAvailable = existsSync(NGINX);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = process.env.STREAMD_SOURCE_DIR || path.resolve(here, '..', '..', '..');
export const EXAMPLE = path.join(repoRoot, 'etc', 'nginx-cluster.conf');

/**
 * Starts nginx in front of the streamd servers NODES (fixture objects with .address and .port), with
 * the server block of EXAMPLE (default etc/nginx-cluster.conf), changed by EDIT (text ⇒ text) if given.
 */
export async function startNginx(nodes, { example: file = EXAMPLE, edit = (t) => t } = {}) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'streamd-nginx-'));
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, d));
  const example = edit(readFileSync(file, 'utf8'))
    .replace(/(upstream streamd \{\n)(\s*server [^\n]+\n)+/, (_, head) =>
      head + nodes.map((n) => `    server ${n.address}:${n.port};\n`).join(''))
    .replace(/listen \d+;/, `listen 127.0.0.1:${port};`);
  writeFileSync(path.join(dir, 'nginx.conf'), [
    process.getuid && process.getuid() === 0 ? 'user root;' : '',
    'daemon off;',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    ...['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((d) => `  ${d === 'body' ? 'client_body' : d}_temp_path ${dir}/${d};`),
    example,
    '}',
    '',
  ].join('\n'));
  const child = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (child.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(path.join(dir, 'error.log'), 'utf8')}`);
    await delay(25);
  }
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) child.kill('SIGQUIT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
