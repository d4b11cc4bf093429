// A raw soak client over http_stream, SSE or WebSocket (JSON protocol), written push-style so that
// thousands of them keep no per-frame state (the test library's raw clients keep every line they
// received, which a long soak cannot afford). It connects, subscribes to its channels (recovering each
// one from its last offset and epoch after a reconnect), feeds what arrives into its ledger Tracks, and
// can publish (the publisher clients) through emulation POSTs sent to its own node or to the other one
// (which routes them to the session's node). It can be killed in the unfriendly ways of issue 14.
//
// Threads: Node's event loop only. Invariant: every Track of the client is suspended while it has no
// live connection, and each connection attempt ends in exactly one of onConnected / onEnd.
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import { postJSON } from '../integration/lib/http.js';
import { clientFrame } from '../integration/lib/wsraw.js';

const REPLY_TIMEOUT_MS = 10000;

/** How a client ends a connection on purpose; the names are the table's. */
export const KILLS = ['rst', 'fin', 'halfclose', 'midrequest', 'midchunk'];

export class RawClient {
  /** CTX: { ledger, nodes() -> up nodes [{base, port}], token(user), stats, onGone(client) }. */
  constructor(ctx, { kind, id, channels = [] }) {
    this.ctx = ctx;
    this.kind = kind;
    this.id = id;
    this.user = `u${id}`;
    this.tracks = new Map(channels.map((ch) => [ch, ctx.ledger.newTrack(ch, `${kind}#${id}`)]));
    this.conn = null;
    this.retired = false;
    this.nextId = 2;
    this.pending = new Map(); // command id -> { resolve, timer }
  }

  start() {
    this._connect();
  }

  _pickNode() {
    const up = this.ctx.nodes();
    return up.length ? up[Math.floor(Math.random() * up.length)] : null;
  }

  _connect() {
    if (this.retired) return;
    const node = this._pickNode();
    if (!node) return this._retry();
    const conn = { node, session: '', nodeId: '', socket: null, res: null, alive: true, buf: '' };
    this.conn = conn;
    this.ctx.stats.connects++;
    const cmd = JSON.stringify({ id: 1, connect: { token: this.ctx.token(this.user), name: 'soak' } });
    const fail = () => this._onEnd(conn);
    if (this.kind === 'ws') {
      const sock = net.connect(node.port, '127.0.0.1');
      conn.socket = sock;
      sock.on('error', fail);
      sock.on('close', fail);
      let head = Buffer.alloc(0);
      let wsbuf = Buffer.alloc(0);
      let upgraded = false;
      sock.on('data', (d) => {
        if (!upgraded) {
          head = Buffer.concat([head, d]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          if (!/^HTTP\/1\.1 101/.test(head.subarray(0, 20).toString())) return sock.destroy();
          upgraded = true;
          wsbuf = head.subarray(end + 4);
          sock.write(clientFrame(0x1, cmd));
        } else {
          wsbuf = wsbuf.length ? Buffer.concat([wsbuf, d]) : d;
        }
        wsbuf = this._wsFrames(conn, wsbuf);
      });
      sock.write(`GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1:${node.port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n` +
        'Sec-WebSocket-Version: 13\r\n\r\n');
      return;
    }
    const sse = this.kind === 'sse';
    const req = http.request(sse
      ? `${node.base}/connection/sse?cf_connect=${encodeURIComponent(cmd)}`
      : `${node.base}/connection/http_stream`, {
      method: sse ? 'GET' : 'POST',
      headers: sse ? {} : { 'Content-Type': 'application/json' },
      agent: false,
    });
    req.on('socket', (s) => { conn.socket = s; });
    req.on('error', fail);
    req.on('response', (res) => {
      conn.res = res;
      if (res.statusCode !== 200) {
        this.ctx.stats.refused++;
        res.resume();
        return req.destroy();
      }
      res.setEncoding('utf8');
      res.on('data', (chunk) => this._text(conn, chunk, sse));
      res.on('close', fail);
      res.on('error', fail);
    });
    req.end(sse ? undefined : cmd);
  }

  _wsFrames(conn, b) {
    for (;;) {
      if (b.length < 2) return b;
      let len = b[1] & 0x7f;
      let hl = 2;
      if (len === 126) {
        if (b.length < 4) return b;
        len = b.readUInt16BE(2);
        hl = 4;
      } else if (len === 127) {
        if (b.length < 10) return b;
        len = Number(b.readBigUInt64BE(2));
        hl = 10;
      }
      if (b.length < hl + len) return b;
      const op = b[0] & 0x0f;
      const payload = b.subarray(hl, hl + len);
      b = b.subarray(hl + len);
      if (op === 0x1) for (const line of payload.toString().split('\n')) if (line) this._frame(conn, line);
      if (op === 0x8 && conn.socket) conn.socket.end();
    }
  }

  _text(conn, chunk, sse) {
    conn.buf += chunk;
    let nl;
    while ((nl = conn.buf.indexOf('\n')) >= 0) {
      const line = conn.buf.slice(0, nl);
      conn.buf = conn.buf.slice(nl + 1);
      if (sse) {
        if (line.startsWith('data: ')) this._frame(conn, line.slice(6));
      } else if (line) {
        this._frame(conn, line);
      }
    }
  }

  _frame(conn, line) {
    if (!conn.alive) return;
    let m;
    try {
      m = JSON.parse(line);
    } catch {
      this.ctx.stats.badFrames++;
      return;
    }
    if (m.id === 1) {
      if (!m.connect) return this._drop(conn);
      conn.session = m.connect.session;
      conn.nodeId = m.connect.node;
      this._subscribe(conn, [...this.tracks.keys()]);
      return;
    }
    if (m.id) {
      const p = this.pending.get(m.id);
      if (p) {
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        p.resolve(m);
      }
      return;
    }
    if (m.push) return this._push(conn, m.push);
    if (Object.keys(m).length === 0 && this.kind === 'ws') this._send(conn, [{}]); // pong
  }

  _push(conn, push) {
    const t = this.tracks.get(push.channel);
    if (push.pub) {
      if (t) {
        let data = push.pub.data;
        if (data === undefined && push.pub.b64data) data = JSON.parse(Buffer.from(push.pub.b64data, 'base64'));
        t.publication(data, push.pub.offset);
      }
    } else if (push.unsubscribe && t) {
      const code = push.unsubscribe.code;
      if (code >= 2500) {
        if (code === 2500) this.ctx.ledger.told.unsub_2500++;
        t.suspend();
        this._subscribe(conn, [push.channel]);
      } else {
        this.ctx.stats.unsubscribed++;
        t.close();
      }
    } else if (push.disconnect) {
      if (push.disconnect.code === 3010) this.ctx.ledger.told.disconnect_3010++;
      this.ctx.stats.disconnectPushes[push.disconnect.code] = (this.ctx.stats.disconnectPushes[push.disconnect.code] || 0) + 1;
    }
  }

  /**
   * Sends COMMANDS (objects with ids) over CONN; ON_REPLY(i, reply or null on timeout or end) is called
   * synchronously as the reply is read, so that it takes effect before the frames that follow it.
   */
  _send(conn, cmds, onReply = () => {}) {
    cmds.forEach((c, i) => {
      if (!c.id) return;
      const resolve = (r) => onReply(i, r);
      const timer = setTimeout(() => { this.pending.delete(c.id); resolve(null); }, REPLY_TIMEOUT_MS);
      this.pending.set(c.id, { resolve, timer });
    });
    if (this.kind === 'ws') {
      if (conn.socket && conn.alive) conn.socket.write(clientFrame(0x1, cmds.map((c) => JSON.stringify(c)).join('\n')));
    } else {
      const target = Math.random() < 0.5 ? conn.node : (this._pickNode() || conn.node);
      if (target !== conn.node) this.ctx.stats.routedPosts++;
      this.ctx.stats.posts++;
      postJSON(`${target.base}/emulation`, { session: conn.session, node: conn.nodeId,
        data: cmds.map((c) => JSON.stringify(c)).join('\n') })
        .then((r) => { if (r.status !== 204) this.ctx.stats.postStatus[r.status] = (this.ctx.stats.postStatus[r.status] || 0) + 1; },
          () => { this.ctx.stats.postStatus.error = (this.ctx.stats.postStatus.error || 0) + 1; });
    }
  }

  /** Subscribes to CHANNELS in one request; each reply is applied the moment it arrives (before any
   * publication that follows it on the stream). */
  _subscribe(conn, channels) {
    if (!channels.length) return;
    const cmds = channels.map((ch) => {
      const t = this.tracks.get(ch);
      const sub = { channel: ch, recoverable: true, positioned: true };
      if (t.recoverable) Object.assign(sub, { recover: true, epoch: t.epoch, offset: t.offset });
      t.note(`subscribe ${JSON.stringify(sub)} on ${conn.node.base} via ${this.kind}`);
      return { id: this.nextId++, subscribe: sub };
    });
    this._send(conn, cmds, (i, r) => {
      if (!conn.alive) return;
      const t = this.tracks.get(channels[i]);
      if (r && r.subscribe) {
        t.subscribed(r.subscribe);
        return;
      }
      // No answer or an error: start over the way the SDK does (reconnect, recover).
      const code = r && r.error ? r.error.code : 'none';
      this.ctx.stats.subscribeFailures[code] = (this.ctx.stats.subscribeFailures[code] || 0) + 1;
      this._drop(conn);
    });
  }

  /** Publishes DATA on CHANNEL; resolves 'ok', 'failed' or 'unknown'. */
  async publish(channel, data) {
    const conn = this.conn;
    if (!conn || !conn.alive || !conn.session) return 'unknown';
    const r = await new Promise((resolve) => this._send(conn, [{ id: this.nextId++, publish: { channel, data } }], (i, reply) => resolve(reply)));
    if (!r) return 'unknown';
    return r.publish ? 'ok' : 'failed';
  }

  get ready() {
    return !!(this.conn && this.conn.alive && this.conn.session);
  }

  _drop(conn) {
    if (conn.socket) conn.socket.destroy();
    else if (conn.res) conn.res.destroy();
    this._onEnd(conn);
  }

  _onEnd(conn) {
    if (!conn.alive) return;
    conn.alive = false;
    if (conn.socket && !conn.socket.destroyed) conn.socket.destroy();
    for (const t of this.tracks.values()) t.suspend();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve(null);
      this.pending.delete(id);
    }
    if (this.conn === conn) this.conn = null;
    this._retry();
  }

  _retry() {
    if (this.retired) return;
    setTimeout(() => { if (!this.conn) this._connect(); }, 200 + Math.random() * 1500);
  }

  /**
   * Ends the connection the unfriendly way HOW (one of KILLS); with RECOVER the client connects again
   * and recovers, else it retires (its tracks close now) and ctx.onGone is called.
   */
  kill(how, recover) {
    const conn = this.conn;
    if (!recover) {
      this.retired = true;
      for (const t of this.tracks.values()) t.close();
    }
    this.ctx.stats.kills[how] = (this.ctx.stats.kills[how] || 0) + 1;
    if (conn && conn.alive) {
      const sock = conn.socket;
      if (how === 'rst' && sock) sock.resetAndDestroy();
      else if (how === 'fin' && sock) {
        if (this.kind === 'ws') sock.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
        sock.end();
        setTimeout(() => sock.destroy(), 1000);
      } else if (how === 'halfclose' && sock) {
        sock.end();
        setTimeout(() => sock.destroy(), 2000);
      } else if (how === 'midrequest') {
        this._cutRequest(conn);
        setTimeout(() => this._drop(conn), 300);
      } else if (how === 'midchunk') {
        if (conn.res) conn.res.pause();
        if (sock) sock.pause();
        setTimeout(() => (sock ? sock.resetAndDestroy() : this._drop(conn)), 1000 + Math.random() * 2000);
      } else {
        this._drop(conn);
      }
      for (const t of this.tracks.values()) t.suspend();
    }
    if (!recover) this.ctx.onGone(this);
  }

  /** A request cut before its body ends: an emulation POST (or a WebSocket frame) half sent. */
  _cutRequest(conn) {
    const body = JSON.stringify({ session: conn.session, node: conn.nodeId, data: JSON.stringify({ id: 999999, subscribe: { channel: 'soak:x' } }) });
    if (this.kind === 'ws') {
      if (conn.socket) conn.socket.write(clientFrame(0x1, body).subarray(0, 20));
      return;
    }
    const req = http.request(`${conn.node.base}/emulation`, {
      method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length + 200) },
    });
    req.on('error', () => {});
    req.write(body.slice(0, body.length >> 1));
    setTimeout(() => req.destroy(), 200);
  }
}
