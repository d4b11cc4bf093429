// The same page behind nginx (Debian's, unprivileged on loopback), one public port: through the shipped
// etc/nginx-streamd.conf over WebSocket, http_stream and SSE; through a proxy that does not pass
// Upgrade, the SDK falls back to http_stream; and through etc/nginx-cluster.conf round-robin over two
// nodes on Redis, with no sticky sessions.
import { after, afterEach, before, describe, test } from 'node:test';
import path from 'node:path';
import { startServer, stopAll, API_KEY } from '../integration/lib/server.js';
import { startNginx, nginxAvailable, EXAMPLE } from '../integration/lib/nginx.js';
import { startRedis, stopAllRedis, redisAvailable } from '../integration/lib/redis.js';
import { chromiumSkip, launchBrowser, startSite, openPage } from './lib/browser.js';
import { ws, fallback, roundTrip } from './lib/checks.js';

const SINGLE = path.join(path.dirname(EXAMPLE), 'nginx-streamd.conf');
const skip = chromiumSkip || (!nginxAvailable && 'nginx is not installed (apt-get install nginx)');

let browser, site;
let opened = [];
const keep = (x) => (opened.push(x), x);
before(async () => {
  if (skip) return;
  browser = await launchBrowser();
  site = await startSite();
});
afterEach(async () => {
  for (const x of opened.reverse()) await (x.close || x.stop)();
  opened = [];
  await stopAll();
});
after(async () => {
  if (browser) await browser.close();
  if (site) await site.close();
  await stopAllRedis();
});

const config = (extra = {}) => ({ http_stream: true, sse: true, client_insecure: true, api_key: API_KEY,
  allowed_origins: [site.origin], ...extra });

const transports = {
  websocket: (base) => ws(base),
  http_stream: (base) => [{ transport: 'http_stream', endpoint: `${base}/connection/http_stream` }],
  sse: (base) => [{ transport: 'sse', endpoint: `${base}/connection/sse` }],
};

describe('behind nginx (etc/nginx-streamd.conf)', { skip }, () => {
  for (const [name, endpoints] of Object.entries(transports)) {
    test(`${name} through nginx`, async () => {
      const srv = await startServer(config());
      const nginx = keep(await startNginx([srv], { example: SINGLE }));
      const p = keep(await openPage(browser, site, { endpoints: endpoints(nginx.base),
        options: { emulationEndpoint: `${nginx.base}/emulation` } }));
      await roundTrip(p, srv, name);
    });
  }

  test('a proxy that does not pass Upgrade: the WebSocket fails, the SDK falls back to http_stream', async () => {
    const srv = await startServer(config());
    const nginx = keep(await startNginx([srv], { example: SINGLE,
      edit: (t) => t.replace(/^\s*proxy_set_header (Upgrade|Connection \$connection_upgrade).*\n/gm, '') }));
    const p = keep(await openPage(browser, site, { endpoints: fallback(nginx.base),
      options: { emulationEndpoint: `${nginx.base}/emulation` } }));
    await roundTrip(p, srv, 'http_stream');
    await p.waitLine('events', /^error transport/);
  });
});

describe('two nodes on Redis behind nginx round-robin (etc/nginx-cluster.conf)', { skip: skip || (!redisAvailable && 'redis-server is not installed') }, () => {
  for (const [name, endpoints] of Object.entries(transports)) {
    test(`${name}: the page works although its requests reach both nodes`, async () => {
      const redis = await startRedis();
      const cfg = config({ engine: 'redis', redis_address: redis.address, redis_prefix: `br${process.pid}${name}` });
      const nodes = await Promise.all([startServer(cfg), startServer(cfg)]);
      const nginx = keep(await startNginx(nodes));
      const p = keep(await openPage(browser, site, { endpoints: endpoints(nginx.base),
        options: { emulationEndpoint: `${nginx.base}/emulation` } }));
      // Published on the other node than the one the stream may be on: either way it reaches the page.
      await roundTrip(p, nodes[1], name);
    });
  }
});
