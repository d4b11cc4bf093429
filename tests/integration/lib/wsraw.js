// A WebSocket client on a bare net.Socket, for wire-level tests: it sends any frame (masked, any
// opcode, any bytes) and records every frame the server sends exactly as it came, with no validation
// of its own (a library client would answer a bad server frame itself and hide what the server did).
//
//   const c = await openWsRaw(srv.port);                 // handshake done, c.socket is the net.Socket
//   c.send(0x1, '{"id":1,"connect":{}}');                // text frame (FIN set, masked)
//   c.send(0x1, part, { fin: false }); c.send(0x0, rest) // fragments
//   await c.nextFrame()                                  // { fin, opcode, payload: Buffer }
//   await c.closeFrame()                                 // the server's Close: { code, reason: Buffer }
//   await c.ended                                        // resolves when the server closed the socket
import net from 'node:net';
import crypto from 'node:crypto';

export const WS_WAIT_MS = 10000;

/** One masked client frame: OPCODE (0..15), PAYLOAD (Buffer or string), fin (default true). */
export function clientFrame(opcode, payload = Buffer.alloc(0), { fin = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const mask = crypto.randomBytes(4);
  let head;
  if (data.length < 126) {
    head = Buffer.from([(fin ? 0x80 : 0) | rsv | opcode, 0x80 | data.length]);
  } else if (data.length <= 0xffff) {
    head = Buffer.from([(fin ? 0x80 : 0) | rsv | opcode, 0x80 | 126, data.length >> 8, data.length & 0xff]);
  } else {
    head = Buffer.alloc(10);
    head[0] = (fin ? 0x80 : 0) | rsv | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  const body = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) body[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

/** A Close payload: CODE (2 bytes) and REASON (Buffer or string). */
export function closePayload(code, reason = '') {
  const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

export class WsRaw {
  constructor(socket, rest) {
    this.socket = socket;
    this.buf = rest;
    this.frames = [];
    this.read = 0;
    this.waiters = [];
    this.ended = new Promise((resolve) => socket.on('close', resolve));
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this._parse();
    });
    socket.on('close', () => this._wake());
    socket.on('error', () => {});
    this._parse();
  }

  _parse() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      let len = b[1] & 0x7f;
      let hl = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        hl = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        hl = 10;
      }
      if (b.length < hl + len) break;
      this.frames.push({ fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload: b.subarray(hl, hl + len) });
      this.buf = b.subarray(hl + len);
    }
    this._wake();
  }

  _wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(opcode, payload, opts) {
    this.socket.write(clientFrame(opcode, payload, opts));
  }

  /** The next frame from the server, or null when the socket closed first. */
  nextFrame(ms = WS_WAIT_MS) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no WebSocket frame within ${ms} ms`)), ms);
      const check = () => {
        if (this.read < this.frames.length) {
          clearTimeout(timer);
          resolve(this.frames[this.read++]);
        } else if (this.socket.destroyed || this.socket.readableEnded) {
          clearTimeout(timer);
          resolve(null);
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** Skips frames up to the server's Close and returns { code, reason (Buffer) }; code 0 = none. */
  async closeFrame(ms = WS_WAIT_MS) {
    for (;;) {
      const f = await this.nextFrame(ms);
      if (f === null) throw new Error('the socket closed without a Close frame');
      if (f.opcode !== 0x8) continue;
      return f.payload.length >= 2
        ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2) }
        : { code: 0, reason: Buffer.alloc(0) };
    }
  }

  /** The next text frame parsed as JSON (skips control frames). */
  async nextJSON(ms = WS_WAIT_MS) {
    for (;;) {
      const f = await this.nextFrame(ms);
      if (f === null) throw new Error('the socket closed before a text frame');
      if (f.opcode === 0x1) return JSON.parse(f.payload.toString());
      if (f.opcode === 0x8) throw new Error(`Close ${f.payload.length >= 2 ? f.payload.readUInt16BE(0) : ''}`);
    }
  }

  /** The next text frame's payload as a string (a frame may carry several JSON lines). */
  async nextJSONText(ms = WS_WAIT_MS) {
    for (;;) {
      const f = await this.nextFrame(ms);
      if (f === null) throw new Error('the socket closed before a text frame');
      if (f.opcode === 0x1) return f.payload.toString();
      if (f.opcode === 0x8) throw new Error(`Close ${f.payload.length >= 2 ? f.payload.readUInt16BE(0) : ''}`);
    }
  }

  destroy() {
    this.socket.destroy();
  }
}

const open = new Set();

/** Opens a WebSocket to 127.0.0.1:PORT (PATH) on a bare socket; resolves once the 101 arrived. */
export function openWsRaw(port, { path = '/connection/websocket', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const key = crypto.randomBytes(16).toString('base64');
    let head = Buffer.alloc(0);
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const status = head.subarray(0, end).toString().split('\r\n')[0];
      if (!/^HTTP\/1\.1 101/.test(status)) {
        socket.destroy();
        reject(new Error(`handshake refused: ${status}`));
        return;
      }
      const c = new WsRaw(socket, head.subarray(end + 4));
      open.add(c);
      resolve(c);
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed during the handshake'))); // no-op once resolved
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
  });
}

/** Destroys every socket openWsRaw opened (for after()). */
export function closeAllWsRaw() {
  for (const c of open) c.destroy();
  open.clear();
}
