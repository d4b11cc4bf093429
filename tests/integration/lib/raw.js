// A raw HTTP-streaming client: POSTs a body to the stream endpoint and reads the response line by
// line, exactly as the bytes arrive, plus /emulation requests for its session.
//
//   const s = await connectRaw(srv.base);          // connect command, first line = connect reply
//   s.client, s.session, s.node, s.connectReply
//   await s.emulate([{ id: 2, subscribe: { channel: 'a' } }]);   // => { status, headers, body }
//   await s.nextJSON()                              // next frame as an object (throws on an empty line)
//   await s.expectEnd()                             // the stream ends (returns what came before the end)
import http from 'node:http';
import assert from 'node:assert/strict';
import { postJSON } from './http.js';

export const DEFAULT_WAIT_MS = 10000;

export class RawStream {
  constructor(req, res, { emulationUrl }) {
    this.req = req;
    this.res = res;
    this.status = res.statusCode;
    this.headers = res.headers;
    this.emulationUrl = emulationUrl;
    this.lines = [];        // complete lines not consumed yet
    this.allLines = [];     // every complete line received, for diagnostics
    this.partial = '';      // bytes after the last '\n'
    this.ended = false;
    this.endError = null;
    this.waiters = [];
    this.client = null;
    this.session = null;
    this.node = null;
    this.connectReply = null;
    this.decoder = new TextDecoder('utf-8', { fatal: true });
    this.endPromise = new Promise((resolve) => {
      this._resolveEnd = resolve;
    });
    res.on('data', (chunk) => this._onData(chunk));
    res.on('end', () => this._onEnd(null));
    res.on('aborted', () => this._onEnd(new Error('aborted')));
    res.on('error', (e) => this._onEnd(e));
    res.on('close', () => this._onEnd(null));
  }

  _onData(chunk) {
    let text;
    try {
      text = this.decoder.decode(chunk, { stream: true });
    } catch (e) {
      this._onEnd(new Error('stream is not valid UTF-8: ' + e.message));
      return;
    }
    this.partial += text;
    let nl;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl);
      this.partial = this.partial.slice(nl + 1);
      this.lines.push(line);
      this.allLines.push(line);
    }
    this._wake();
  }

  _onEnd(err) {
    if (this.ended) return;
    this.ended = true;
    this.endError = err;
    this._wake();
    this._resolveEnd();
  }

  _wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  _describe() {
    const tail = this.allLines.slice(-10).map((l) => (l.length > 300 ? l.slice(0, 300) + '…' : l));
    return `last lines: ${JSON.stringify(tail)}; unterminated tail: ${JSON.stringify(this.partial.slice(0, 300))}; ended: ${this.ended}`;
  }

  /** The next complete line; null when the stream ended; throws after timeoutMs. */
  nextLine(timeoutMs = DEFAULT_WAIT_MS) {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        this.waiters = this.waiters.filter((f) => f !== check);
        reject(new Error(`no line on the stream within ${timeoutMs} ms (${this._describe()})`));
      }, timeoutMs);
      const check = () => {
        if (this.lines.length) {
          clearTimeout(deadline);
          resolve(this.lines.shift());
        } else if (this.ended) {
          clearTimeout(deadline);
          resolve(null);
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** The next frame parsed as JSON; throws on an empty line, invalid JSON, end of stream or timeout. */
  async nextJSON(timeoutMs = DEFAULT_WAIT_MS, { skipPings = false } = {}) {
    for (;;) {
      const line = await this.nextLine(timeoutMs);
      if (line === null) throw new Error(`stream ended while a frame was expected (${this._describe()})`);
      assert.notEqual(line, '', 'the stream must never carry an empty line');
      const msg = parseFrame(line);
      if (skipPings && isPing(msg)) continue;
      return msg;
    }
  }

  /** Reads frames (pings skipped unless keepPings) until PRED(frame) is true; returns that frame. */
  async waitFor(pred, timeoutMs = DEFAULT_WAIT_MS, { keepPings = false } = {}) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms (${this._describe()})`);
      const msg = await this.nextJSON(left, { skipPings: !keepPings });
      if (pred(msg)) return msg;
    }
  }

  /** Reply to command ID (pings skipped; pushes in between are returned in `skipped`). */
  async reply(id, timeoutMs = DEFAULT_WAIT_MS) {
    const skipped = [];
    const r = await this.waitFor((m) => {
      if (m.id === id) return true;
      skipped.push(m);
      return false;
    }, timeoutMs);
    r.skipped = skipped;
    return r;
  }

  /**
   * Waits for the end of the stream; returns the frames that were still to be read (parsed).
   * Fails if the last bytes were not a complete line.
   */
  async expectEnd(timeoutMs = DEFAULT_WAIT_MS) {
    const frames = [];
    for (;;) {
      const line = await this.nextLine(timeoutMs);
      if (line === null) break;
      assert.notEqual(line, '', 'the stream must never carry an empty line');
      frames.push(parseFrame(line));
    }
    assert.equal(this.partial, '', 'the stream ended inside a line (a frame without its "\\n")');
    return frames;
  }

  /** Expects the next non-ping frames to be a disconnect push with CODE followed by the end of the stream. */
  async expectDisconnect(code, timeoutMs = DEFAULT_WAIT_MS) {
    const frame = await this.waitFor((m) => !!(m.push && m.push.disconnect), timeoutMs);
    assert.equal(frame.push.disconnect.code, code,
      `expected disconnect ${code}, got ${JSON.stringify(frame)}`);
    assert.equal(typeof frame.push.disconnect.reason, 'string');
    const rest = await this.expectEnd(timeoutMs);
    assert.deepEqual(rest, [], 'nothing may follow the disconnect push');
    return frame.push.disconnect;
  }

  /** POSTs an emulation request for this session: COMMANDS is an array of commands or the raw data string. */
  emulate(commands, { headers = {}, session = this.session, node = this.node, url = this.emulationUrl } = {}) {
    const data = typeof commands === 'string' ? commands : commands.map((c) => JSON.stringify(c)).join('\n');
    return postJSON(url, { session, node, data }, headers);
  }

  /** Sends a pong ({} over emulation). */
  pong() {
    return this.emulate([{}]);
  }

  /** Stops reading (TCP back-pressure builds up at the server). */
  pause() {
    this.res.pause();
  }

  resume() {
    this.res.resume();
  }

  /** Closes the connection from the client side. */
  close() {
    this.req.destroy();
    this.res.destroy();
  }
}

/** JSON.parse of one stream line, with an error that shows where a broken frame breaks. */
export function parseFrame(line) {
  try {
    return JSON.parse(line);
  } catch (e) {
    const m = /position (\d+)/.exec(e.message);
    const at = m ? Number(m[1]) : 0;
    throw new Error(`a frame on the stream is not JSON (${e.message}; line of ${line.length} chars): ` +
      `starts ${JSON.stringify(line.slice(0, 80))}, around the error ${JSON.stringify(line.slice(Math.max(0, at - 80), at + 120))}`);
  }
}

export function isPing(msg) {
  return msg && typeof msg === 'object' && Object.keys(msg).length === 0;
}

/**
 * Opens a stream: POST URL with BODY (string or Buffer) and HEADERS; resolves once the response
 * headers are in (whatever the status).
 */
export function openStream(url, { body = '', headers = {}, emulationUrl = null, timeoutMs = DEFAULT_WAIT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`POST ${url}: no response headers within ${timeoutMs} ms`));
    }, timeoutMs);
    let done = false;
    req.on('response', (res) => {
      done = true;
      clearTimeout(timer);
      resolve(new RawStream(req, res, {
        emulationUrl: emulationUrl || `${u.protocol}//${u.host}/emulation`,
      }));
    });
    req.on('error', (err) => {
      if (done) return;
      clearTimeout(timer);
      reject(new Error(`POST ${url}: ${err.message}`));
    });
    req.end(body);
  });
}

const opened = new Set();

/**
 * Opens a stream with a connect command and reads the connect reply.
 * Options: streamPath, emulationPath, connect (the ConnectRequest object), id, headers.
 */
export async function connectRaw(base, {
  streamPath = '/connection/http_stream',
  emulationPath = '/emulation',
  connect = { name: 'raw' },
  id = 1,
  headers = {},
  timeoutMs = DEFAULT_WAIT_MS,
} = {}) {
  const s = await openStream(base + streamPath, {
    body: JSON.stringify({ connect, id }),
    headers,
    emulationUrl: base + emulationPath,
    timeoutMs,
  });
  opened.add(s);
  s.endPromise.then(() => opened.delete(s));
  assert.equal(s.status, 200, `stream POST status (${s._describe()})`);
  const reply = await s.nextJSON(timeoutMs);
  assert.equal(reply.id, id, `first frame must be the connect reply: ${JSON.stringify(reply)}`);
  assert.ok(reply.connect, `connect reply without result: ${JSON.stringify(reply)}`);
  s.connectReply = reply.connect;
  s.client = reply.connect.client;
  s.session = reply.connect.session;
  s.node = reply.connect.node;
  return s;
}

/** Opens a raw stream whose first frame is not expected to be a connect reply (status checked by the caller). */
export async function openRaw(base, body, { streamPath = '/connection/http_stream', headers = {} } = {}) {
  const s = await openStream(base + streamPath, { body, headers, emulationUrl: base + '/emulation' });
  opened.add(s);
  s.endPromise.then(() => opened.delete(s));
  return s;
}

/** Closes every raw stream still open (use in after()). */
export function closeAllRaw() {
  for (const s of opened) s.close();
  opened.clear();
}

/** Sends commands and returns the reply to each (by id), in order. */
export async function call(s, cmd) {
  const res = await s.emulate([cmd]);
  assert.equal(res.status, 204, `emulation status for ${JSON.stringify(cmd)}: ${res.status} ${res.body}`);
  return s.reply(cmd.id);
}
