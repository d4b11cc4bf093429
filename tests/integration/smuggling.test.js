// Request smuggling (RFC 9112 §6.1, §6.3, §5): requests whose framing two parsers could read differently
// are answered 400 with Connection: close, on every endpoint, before a handler runs: differing
// Content-Length values, Content-Length together with Transfer-Encoding, a transfer coding other than
// chunked, and header values holding a bare CR. The bytes are written on a raw socket, exactly.
// A NUL cannot be refused: libmicrohttpd 0.9.75 ends the value at the NUL and reports its length as
// strlen(), so the server never sees the bytes after it (the todo test below records that).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';

/** Writes BYTES on a fresh connection; resolves with everything read until the server closes it. */
function rawExchange(port, bytes, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    let closedByServer = false;
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => {
      closedByServer = true;
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, status: Number((/^HTTP\/1\.1 (\d{3})/.exec(text) || [])[1] || 0), closedByServer });
    });
    s.write(Buffer.from(bytes, 'latin1'));
  });
}

const PUBLISH = JSON.stringify({ channel: 'smuggle', data: { x: 1 } });
const CONNECT = JSON.stringify({ id: 1, connect: {} });
const EMULATION = JSON.stringify({ session: 'nope', node: 'nope', data: '' });

const ENDPOINTS = [
  { path: '/api/publish', body: PUBLISH, headers: `X-API-Key: ${API_KEY}\r\nContent-Type: application/json\r\n` },
  { path: '/emulation', body: EMULATION, headers: 'Content-Type: application/json\r\n' },
  { path: '/connection/http_stream', body: CONNECT, headers: 'Content-Type: application/json\r\n' },
];

const hex = (n) => n.toString(16);

// Each case: the framing headers and the body bytes that follow them.
const CASES = [
  {
    name: 'two differing Content-Length headers',
    framing: (b) => `Content-Length: ${b.length}\r\nContent-Length: ${b.length + 5}\r\n`,
    body: (b) => b,
  },
  {
    name: 'a Content-Length list with differing values',
    framing: (b) => `Content-Length: ${b.length}, ${b.length + 5}\r\n`,
    body: (b) => b,
  },
  {
    name: 'Content-Length and Transfer-Encoding: chunked',
    framing: (b) => `Content-Length: ${b.length}\r\nTransfer-Encoding: chunked\r\n`,
    body: (b) => `${hex(b.length)}\r\n${b}\r\n0\r\n\r\n`,
  },
  {
    name: 'Transfer-Encoding: gzip, chunked',
    framing: () => 'Transfer-Encoding: gzip, chunked\r\n',
    body: (b) => `${hex(b.length)}\r\n${b}\r\n0\r\n\r\n`,
  },
  {
    name: 'Transfer-Encoding: identity with a Content-Length',
    framing: (b) => `Transfer-Encoding: identity\r\nContent-Length: ${b.length}\r\n`,
    body: (b) => b,
  },
  {
    name: 'a header value with a bare CR',
    framing: (b) => `X-Note: a\rb\r\nContent-Length: ${b.length}\r\n`,
    body: (b) => b,
  },
];

describe('request smuggling: ambiguous framing ⇒ 400 and the connection closed', () => {
  let srv;
  before(async () => {
    srv = await startServer({ ...BASE_CONFIG });
  });
  after(async () => {
    await stopAll();
  });

  for (const ep of ENDPOINTS) {
    for (const c of CASES) {
      it(`${ep.path}: ${c.name} ⇒ 400, Connection: close`, async () => {
        const bytes = `POST ${ep.path} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n${ep.headers}` +
          `${c.framing(ep.body)}\r\n${c.body(ep.body)}`;
        const r = await rawExchange(srv.port, bytes);
        assert.equal(r.status, 400, r.text);
        assert.match(r.text, /\r\nConnection: close\r\n/i, r.text);
        assert.ok(r.closedByServer, 'the server closes the connection');
      });
    }

    if (ep.path === '/api/publish') {
      it(`${ep.path}: a header value with NUL ⇒ 400`, {
        todo: 'libmicrohttpd 0.9.75 cuts header values at NUL (value_size = strlen): invisible to streamd',
      }, async () => {
        const bytes = `POST ${ep.path} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n${ep.headers}` +
          `X-Note: a\u0000b\r\nContent-Length: ${ep.body.length}\r\n\r\n${ep.body}`;
        const r = await rawExchange(srv.port, bytes, 1000);
        assert.equal(r.status, 400, r.text);
      });
    }

    it(`${ep.path}: one Content-Length (and a repeated equal one) still works`, async () => {
      for (const framing of [`Content-Length: ${ep.body.length}\r\n`,
        `Content-Length: ${ep.body.length}\r\nContent-Length: ${ep.body.length}\r\n`]) {
        const bytes = `POST ${ep.path} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nConnection: close\r\n` +
          `${ep.headers}${framing}\r\n${ep.body}`;
        const r = await rawExchange(srv.port, bytes, 1500);
        assert.notEqual(r.status, 400, r.text);
        assert.ok(r.status >= 200, r.text);
      }
    });

    it(`${ep.path}: Transfer-Encoding: chunked alone still works`, async () => {
      const bytes = `POST ${ep.path} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nConnection: close\r\n` +
        `${ep.headers}Transfer-Encoding: chunked\r\n\r\n${hex(ep.body.length)}\r\n${ep.body}\r\n0\r\n\r\n`;
      const r = await rawExchange(srv.port, bytes, 1500);
      assert.notEqual(r.status, 400, r.text);
      assert.ok(r.status >= 200, r.text);
    });
  }
});
