// Two streamd nodes on one Redis behind nginx round-robin with no sticky sessions (README "Running
// several nodes", etc/nginx-cluster.conf): the official SDK over http_stream and SSE works through it
// although its stream and its emulation POSTs land on different nodes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import EventSource from 'eventsource';
import { startServer, stopAll, API_KEY } from './lib/server.js';
import { connectedClient, subscribe, closeAllClients } from './lib/sdk.js';
import { startRedis, stopAllRedis, redisAvailable } from './lib/redis.js';
import { startNginx, nginxAvailable } from './lib/nginx.js';
import { request } from './lib/http.js';

const skip = (!redisAvailable && 'redis-server is not installed') || (!nginxAvailable && 'nginx is not installed');

let redis, nodes, nginx;
before(async () => {
  if (skip) return;
  redis = await startRedis();
  const cfg = {
    http_stream: true, sse: true, client_insecure: true, api_key: API_KEY, engine: 'redis',
    redis_address: redis.address, redis_prefix: `ng${process.pid}`, prometheus: true,
    namespaces: [{ name: 'chat', history_size: 10, history_ttl: '60s', allow_subscribe_for_client: true,
      allow_publish_for_subscriber: true, presence: true, allow_presence_for_subscriber: true }],
  };
  nodes = await Promise.all([startServer(cfg), startServer(cfg)]);
  nginx = await startNginx(nodes);
});
after(async () => {
  closeAllClients();
  if (nginx) await nginx.stop();
  await stopAll();
  await stopAllRedis();
});

/** Emulation requests each node answered with 204, from its /metrics. */
async function emulations(node) {
  const res = await request(`${node.base}/metrics`);
  const m = /streamd_emulation_requests_total\{status="204"\} (\d+)/.exec(res.body);
  return m ? Number(m[1]) : 0;
}

describe('behind nginx round-robin', { skip }, () => {
  for (const [label, opts] of [
    ['http_stream', {}],
    ['SSE', { transport: 'sse', streamPath: '/connection/sse', eventsource: EventSource }],
  ]) {
    test(`${label}: connect, subscribe, publish and presence through nginx; POSTs reach both nodes`, async () => {
      const before0 = await Promise.all(nodes.map(emulations));
      const a = await connectedClient(nginx.base, opts);
      const b = await connectedClient(nginx.base, opts);
      const ch = `chat:ng${label}`;
      const sa = await subscribe(a, ch);
      const sb = await subscribe(b, ch);
      for (let i = 0; i < 6; i++) await sa.publish({ i });
      for (let i = 0; i < 6; i++) assert.deepEqual((await sb.nextPub()).data, { i });
      const p = await sb.presence();
      assert.deepEqual(Object.keys(p.clients).sort(), [a.connectedCtx.client, b.connectedCtx.client].sort());
      assert.ok(a.emulationStatuses.every((s) => s === 204), `statuses ${a.emulationStatuses}`);
      const after0 = await Promise.all(nodes.map(emulations));
      assert.ok(after0[0] > before0[0] && after0[1] > before0[1], `both nodes answered POSTs (${before0} ⇒ ${after0})`);
    });
  }
});
