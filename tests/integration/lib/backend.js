// Fixture: a real application backend for streamd's event proxies, a Node HTTP server on a free
// loopback port that records every request and answers from a script.
//
//   const be = await startBackend();
//   be.url('/connect')                     // "http://127.0.0.1:PORT/connect", for proxy_*_endpoint
//   be.answer('/connect', (req) => ({ result: { user: 'u1' } }));
//   //   the handler gets { path, headers, body (parsed JSON) } and returns the JSON to answer, or
//   //   { status, raw, delayMs, json } for a status, a raw body, a delay before answering
//   be.requests('/connect')                // every request to that path so far, in order
//   be.accepted()                          // TCP connections accepted so far (keep-alive shows here)
//   await be.close()
//
// Unscripted paths answer 404. Requests are kept in memory for the fixture's life.
import http from 'node:http';

export async function startBackend() {
  const handlers = new Map();
  const log = [];
  const sockets = new Set();
  let accepted = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      const entry = { path: req.url, method: req.method, headers: req.headers, body };
      log.push(entry);
      const handler = handlers.get(req.url);
      const out = handler ? handler(entry) : { status: 404, raw: 'no script for this path' };
      const scripted = out && (out.status !== undefined || out.raw !== undefined || out.delayMs !== undefined);
      const status = scripted && out.status !== undefined ? out.status : 200;
      const payload = scripted ? (out.raw !== undefined ? out.raw : JSON.stringify(out.json ?? {})) : JSON.stringify(out);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(payload);
      };
      if (scripted && out.delayMs) setTimeout(send, out.delayMs);
      else send();
    });
  });
  server.on('connection', (s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    answer: (p, fn) => handlers.set(p, fn),
    requests: (p) => log.filter((e) => e.path === p),
    connections: () => sockets.size,
    accepted: () => accepted,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
