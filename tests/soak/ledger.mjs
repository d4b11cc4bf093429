// The soak's bookkeeping of what was published and what each subscriber saw, and the verdict on it.
//
// Publications: every publisher numbers its publications per channel 1, 2, 3, ... (data {p, s}) and
// publishes one at a time (the next only after the reply to the previous one, or its timeout), so the
// order of its acknowledged publications is the order they must arrive in. Each one is recorded as
// ok (success reply), failed (error reply: not published, or not known to be) or unknown (no reply: the
// connection or node went away, or the reply timed out).
//
// Subscribers: a Track is one client's interest in one channel across reconnects. It is a list of
// windows; a window opens when a subscribe reply arrives (or a recovery failed) and spans every
// reconnect that recovered (recovered:true). A window is suspended while the client is disconnected or
// unsubscribed with a resubscribe code and closed when recovery failed (recovered:false: "told") or the
// client left for good. README.md states exactly what counts as expected, lost, duplicated and told.
//
// Single-threaded (Node's event loop): no locking. Times are Date.now() milliseconds.

/** Publications whose reply came this long before a window closed must have reached that window. */
export const TAIL_GRACE_MS = 5000;

/** SOAK_TRACE=1: every window keeps its events (subscribe replies, suspensions, publications) for diagnosis. */
const TRACE = process.env.SOAK_TRACE === '1';

export class Ledger {
  constructor() {
    this.pubs = new Map(); // `${channel}\n${publisher}` -> [undefined, rec1, rec2, ...] (index = seq)
    this.tracks = new Set();
    this.told = { recovered_false: 0, unsub_2500: 0, disconnect_3010: 0 };
    this.counts = { ok: 0, failed: 0, unknown: 0 };
  }

  /** A new publication by PUBLISHER on CHANNEL: returns its record ({seq, ...}); call settle() on it. */
  begin(channel, publisher) {
    const key = `${channel}\n${publisher}`;
    let list = this.pubs.get(key);
    if (!list) this.pubs.set(key, (list = [undefined]));
    const rec = { seq: list.length, sentAt: Date.now(), ackAt: 0, status: 'pending' };
    list.push(rec);
    return rec;
  }

  /** Records the outcome of REC: 'ok', 'failed' or 'unknown'. Only the first outcome counts. */
  settle(rec, status) {
    if (rec.status !== 'pending') return;
    rec.status = status;
    rec.ackAt = Date.now();
    this.counts[status]++;
  }

  pendingCount() {
    let n = 0;
    for (const list of this.pubs.values()) for (let i = 1; i < list.length; i++) if (list[i].status === 'pending') n++;
    return n;
  }

  /** The highest ok sequence number of every publisher on CHANNEL: Map publisher -> seq. */
  lastOk(channel) {
    const out = new Map();
    for (const [key, list] of this.pubs) {
      const [ch, p] = key.split('\n');
      if (ch !== channel) continue;
      for (let i = list.length - 1; i >= 1; i--) if (list[i].status === 'ok') { out.set(p, i); break; }
    }
    return out;
  }

  newTrack(channel, owner) {
    const t = new Track(this, channel, owner);
    this.tracks.add(t);
    return t;
  }

  /**
   * Judges every window: returns { rows: [{channel, publisher, windows, expected, received, lost,
   * duplicated, reordered}], totals, examples: [strings] }.
   */
  verdict() {
    const rows = new Map();
    const examples = [];
    const row = (channel, publisher) => {
      const k = `${channel}\n${publisher}`;
      if (!rows.has(k)) rows.set(k, { channel, publisher, windows: 0, expected: 0, received: 0, lost: 0, duplicated: 0, reordered: 0 });
      return rows.get(k);
    };
    for (const [key] of this.pubs) row(...key.split('\n'));
    for (const t of this.tracks) {
      for (const w of t.windows) {
        const end = w.end === null ? Infinity : w.end;
        const publishers = new Set([...w.recv.keys()]);
        for (const [key] of this.pubs) if (key.startsWith(t.channel + '\n')) publishers.add(key.split('\n')[1]);
        for (const p of publishers) {
          const list = this.pubs.get(`${t.channel}\n${p}`) || [undefined];
          const got = w.recv.get(p) || [];
          const r = row(t.channel, p);
          const seen = new Set();
          let max = 0;
          for (const s of got) {
            if (seen.has(s)) {
              r.duplicated++;
              if (examples.length < 10) examples.push(`duplicate ${t.channel} ${p}#${s} at ${t.owner}`);
              continue;
            }
            seen.add(s);
            if (s < max) {
              r.reordered++;
              if (w.trace && !w.dumped) {
                w.dumped = true;
                process.stderr.write(`trace of ${t.owner} ${t.channel}: ${JSON.stringify(w.trace)}\n`);
              }
              if (examples.length < 10) examples.push(`out of order ${t.channel} ${p}#${s} after #${max} at ${t.owner}`);
            }
            max = Math.max(max, s);
          }
          r.received += seen.size;
          let expected = 0;
          for (let s = 1; s < list.length; s++) {
            const rec = list[s];
            if (rec.status !== 'ok' || rec.sentAt < w.start) continue;
            if (!(end === Infinity || s < max || rec.ackAt <= end - TAIL_GRACE_MS)) continue;
            expected++;
            if (!seen.has(s)) {
              r.lost++;
              if (w.trace && !w.dumped) {
                w.dumped = true;
                process.stderr.write(`trace of ${t.owner} ${t.channel}: ${JSON.stringify(w.trace)}\n`);
              }
              if (examples.length < 10) {
                examples.push(`lost ${t.channel} ${p}#${s} (sent ${rec.sentAt - w.start} ms after the window opened, ` +
                  `acked ${rec.ackAt - rec.sentAt} ms later) at ${t.owner}; window ${w.reconnects} recoveries, closed=${w.end !== null}`);
              }
            }
          }
          if (expected || got.length) r.windows++;
          r.expected += expected;
        }
      }
    }
    const list = [...rows.values()].sort((a, b) => (a.channel + a.publisher).localeCompare(b.channel + b.publisher));
    const totals = { windows: 0, expected: 0, received: 0, lost: 0, duplicated: 0, reordered: 0 };
    for (const r of list) for (const k of Object.keys(totals)) totals[k] += r[k];
    return { rows: list, totals, examples };
  }
}

/** One client's subscription to one channel over its reconnects (see the top of this file). */
export class Track {
  constructor(ledger, channel, owner) {
    this.ledger = ledger;
    this.channel = channel;
    this.owner = owner;
    this.windows = [];
    this.cur = null;        // the open or suspended window
    this.suspendedAt = 0;   // 0 = not suspended
    this.epoch = '';
    this.offset = 0;        // the stream position of the last publication seen (for recover)
  }

  get recoverable() {
    return this.cur !== null && this.epoch !== '';
  }

  /** A subscribe reply RESULT came ({epoch, offset, recovered, was_recovering, publications}). */
  subscribed(result, now = Date.now()) {
    if (this.cur && this.suspendedAt && result.was_recovering && result.recovered) {
      this.cur.reconnects++;
      this.suspendedAt = 0;
    } else {
      if (this.cur) {
        if (this.suspendedAt) this.ledger.told.recovered_false++;
        this.close(this.suspendedAt || now);
      }
      this.cur = { start: now, end: null, recv: new Map(), reconnects: 0, trace: TRACE ? [] : null };
      this.windows.push(this.cur);
    }
    if (this.cur.trace) {
      this.cur.trace.push([now - this.cur.start, 'subscribed', { recovered: result.recovered, was_recovering: result.was_recovering,
        epoch: result.epoch, offset: result.offset, pubs: (result.publications || []).map((p) => `${p.data && p.data.p}#${p.data && p.data.s}@${p.offset}`) }]);
    }
    if (result.epoch) this.epoch = result.epoch;
    // JSON omits a zero offset: absent is 0 (a fresh epoch after Redis lost the stream), not "unchanged".
    this.offset = Number(result.offset || 0);
    for (const pub of result.publications || []) this.publication(pub.data, pub.offset);
  }

  /** A publication with DATA ({p, s}) and stream OFFSET arrived. */
  publication(data, offset) {
    if (offset !== undefined && offset !== null) this.offset = Math.max(this.offset, Number(offset));
    if (!this.cur || !data || typeof data.p !== 'string') {
      if (this.cur && this.cur.trace) this.cur.trace.push([Date.now() - this.cur.start, 'pub-ignored', JSON.stringify(data), offset]);
      return;
    }
    let list = this.cur.recv.get(data.p);
    if (!list) this.cur.recv.set(data.p, (list = []));
    list.push(data.s);
    if (this.cur.trace) this.cur.trace.push([Date.now() - this.cur.start, 'pub', `${data.p}#${data.s}@${offset}`]);
  }

  /** Diagnostics only (SOAK_TRACE=1): WHAT happened now. */
  note(what) {
    if (this.cur && this.cur.trace) this.cur.trace.push([Date.now() - this.cur.start, what]);
  }

  /** The client lost this subscription for now (disconnect, unsubscribe push >= 2500). */
  suspend(now = Date.now()) {
    if (this.cur && !this.suspendedAt) {
      this.suspendedAt = now;
      if (this.cur.trace) this.cur.trace.push([now - this.cur.start, 'suspended', new Error().stack.split('\n')[2].trim()]);
    }
  }

  /** The subscription ended for good (or before a fresh, non-recovering subscribe). */
  close(at = Date.now()) {
    if (this.cur) this.cur.end = this.suspendedAt || at;
    this.cur = null;
    this.suspendedAt = 0;
  }
}
