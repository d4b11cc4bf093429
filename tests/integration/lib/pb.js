// Protobuf wire helpers for tests: just enough of the encoding (varints, length-delimited fields) to
// build the commands of PROTOCOL.md §4.1 by field number and to read replies back as field maps, plus
// a raw protobuf http_stream client (Content-Type: application/octet-stream, uvarint-framed replies).
import http from 'node:http';

export function varint(n) {
  let v = BigInt(n);
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

/** Field FIELD as a varint (wire type 0). */
export function fVarint(field, n) {
  return Buffer.concat([varint((field << 3) | 0), varint(n)]);
}

/** Field FIELD as length-delimited bytes (wire type 2): strings, bytes, sub-messages. */
export function fBytes(field, value) {
  const b = Buffer.isBuffer(value) ? value : Buffer.from(value);
  return Buffer.concat([varint((field << 3) | 2), varint(b.length), b]);
}

export function msg(...parts) {
  return Buffer.concat(parts);
}

/** A message prefixed by its uvarint length (stream and emulation framing). */
export function delimited(m) {
  return Buffer.concat([varint(m.length), m]);
}

/** Reads one uvarint at POS; returns [value, nextPos] or null when BUF ends inside it. */
export function readVarint(buf, pos) {
  let v = 0n;
  let shift = 0n;
  for (let i = pos; i < buf.length; i++) {
    v |= BigInt(buf[i] & 0x7f) << shift;
    if ((buf[i] & 0x80) === 0) return [v, i + 1];
    shift += 7n;
  }
  return null;
}

/** Parses a message into { fieldNumber: [values] } (varints as BigInt, length-delimited as Buffer). */
export function parse(buf) {
  const out = {};
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wt = Number(key & 7n);
    let value;
    if (wt === 0) {
      [value, pos] = readVarint(buf, p1);
    } else if (wt === 2) {
      const [len, p2] = readVarint(buf, p1);
      value = buf.subarray(p2, p2 + Number(len));
      pos = p2 + Number(len);
    } else {
      throw new Error(`wire type ${wt} not expected in replies`);
    }
    (out[field] ||= []).push(value);
  }
  return out;
}

// Command fields (Command.id=1, connect=4, subscribe=5, unsubscribe=6, publish=7).
export const cmd = {
  connect: (id, name = 'pbtest') => msg(fVarint(1, id), fBytes(4, fBytes(4, name))),
  subscribe: (id, channel) => msg(fVarint(1, id), fBytes(5, fBytes(1, channel))),
  unsubscribe: (id, channel) => msg(fVarint(1, id), fBytes(6, fBytes(1, channel))),
  publish: (id, channel, data) => msg(fVarint(1, id), fBytes(7, msg(fBytes(1, channel), fBytes(2, data)))),
  pong: () => Buffer.alloc(0),
};

/** The EmulationRequest body (node=1, session=2, data=3), not length-prefixed. */
export function emulationBody(node, session, data) {
  return msg(fBytes(1, node), fBytes(2, session), fBytes(3, data));
}

/**
 * Opens a protobuf stream with BODY (a Buffer; default: a connect command) and collects its replies.
 * Returns { status, headers, replies (Buffer[]), next(timeoutMs), ended, endPromise, raw chunks, close() }.
 */
export function openPbStream(base, body = delimited(cmd.connect(1)), path = '/connection/http_stream') {
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length },
    }, (res) => {
      const s = { status: res.statusCode, headers: res.headers, replies: [], chunks: [], ended: false };
      let pending = Buffer.alloc(0);
      let waiters = [];
      const wake = () => { const w = waiters; waiters = []; for (const f of w) f(); };
      s.endPromise = new Promise((r) => { s._end = r; });
      res.on('data', (chunk) => {
        s.chunks.push(chunk);
        pending = Buffer.concat([pending, chunk]);
        for (;;) {
          const v = readVarint(pending, 0);
          if (!v || pending.length < v[1] + Number(v[0])) break;
          s.replies.push(pending.subarray(v[1], v[1] + Number(v[0])));
          pending = pending.subarray(v[1] + Number(v[0]));
        }
        wake();
      });
      const end = () => { if (!s.ended) { s.ended = true; s._end(); wake(); } };
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
      let read = 0;
      s.next = (timeoutMs = 10000) => new Promise((res2, rej2) => {
        const timer = setTimeout(() => rej2(new Error(`no protobuf reply within ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (read < s.replies.length) { clearTimeout(timer); res2(s.replies[read++]); }
          else if (s.ended) { clearTimeout(timer); rej2(new Error('stream ended')); }
          else waiters.push(check);
        };
        check();
      });
      s.close = () => req.destroy();
      resolve(s);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** POSTs an EmulationRequest body; resolves with the HTTP status. */
export async function emulatePb(base, body, path = '/emulation') {
  const res = await fetch(base + path, {
    method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body,
  });
  await res.arrayBuffer();
  return res.status;
}
