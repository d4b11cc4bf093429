// Plain HTTP requests with full control over method, headers and body (node:http, one fresh
// connection per request so that a server that closes the connection cannot disturb other requests).
import http from 'node:http';
import net from 'node:net';

/**
 * Sends one request and resolves with { status, headers, body } (body as a UTF-8 string).
 * A connection error that happens after the response arrived (e.g. the server answered 413 and
 * closed while the body was still being sent) is ignored: what counts is what the client got.
 */
export function request(url, { method = 'GET', headers = {}, body = undefined, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    let settled = false;
    let gotResponse = false;
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method,
      headers,
      agent: false,
    });
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(new Error(`${method} ${url}: no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('response', (res) => {
      gotResponse = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      };
      res.on('end', finish);
      res.on('error', finish);
      res.on('aborted', finish);
    });
    req.on('error', (err) => {
      if (gotResponse || settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${method} ${url}: ${err.message}`));
    });
    if (body !== undefined) {
      req.write(body, () => {});
    }
    req.end();
  });
}

/** POST of a JSON body (object ⇒ JSON.stringify; string ⇒ sent as is). */
export function postJSON(url, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return request(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: text,
  });
}

/** Server API call: POST {base}{prefix}/{method} with the API key in X-API-Key. */
export async function api(base, method, params, { key, prefix = '/api', headers = {} } = {}) {
  const h = { ...headers };
  if (key !== undefined && key !== null) h['X-API-Key'] = key;
  const res = await postJSON(`${base}${prefix}/${method}`, params, h);
  let json = null;
  try {
    json = res.body ? JSON.parse(res.body) : null;
  } catch {
    json = null;
  }
  return { ...res, json };
}

/** A loopback TCP port the kernel just handed out and released (free unless taken meanwhile). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves after MS milliseconds (only for bounded waits that prove an absence, never for ordering). */
export function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects with MESSAGE unless PROMISE settles within MS. */
export function withTimeout(promise, ms, message) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${message}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
