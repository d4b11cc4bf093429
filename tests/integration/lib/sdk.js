// The official SDK (npm centrifuge 5.8.0, unchanged) configured for streamd's http_stream transport.
// Node 20 provides fetch, ReadableStream, TextDecoder, AbortController and EventTarget globally, which
// is everything HttpStreamTransport.supported() checks; no websocket/eventsource dependency is needed.
import { Centrifuge } from 'centrifuge';
import { Centrifuge as CentrifugePb } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';
import EventSource from 'eventsource';
import { withTimeout } from './http.js';

export { Centrifuge };

// Generous: the tests also run against an ASan build on a small machine.
export const SDK_TIMEOUT_MS = 15000;

/**
 * The SDK over every transport streamd serves it bidirectionally on, in both codecs: name =>
 * (srv, extra options) => a new, unconnected client (WebSocket and the eventsource polyfill for SSE
 * from the test's dependencies).
 */
export const SDK_TRANSPORTS = {
  'http_stream JSON': (s, extra = {}) => new Centrifuge([{ transport: 'http_stream', endpoint: `${s.base}/connection/http_stream` }],
    { emulationEndpoint: `${s.base}/emulation`, timeout: SDK_TIMEOUT_MS, ...extra }),
  'http_stream protobuf': (s, extra = {}) => new CentrifugePb([{ transport: 'http_stream', endpoint: `${s.base}/connection/http_stream` }],
    { emulationEndpoint: `${s.base}/emulation`, timeout: SDK_TIMEOUT_MS, ...extra }),
  'SSE JSON': (s, extra = {}) => new Centrifuge([{ transport: 'sse', endpoint: `${s.base}/connection/sse` }],
    { eventsource: EventSource, emulationEndpoint: `${s.base}/emulation`, timeout: SDK_TIMEOUT_MS, ...extra }),
  'WebSocket JSON': (s, extra = {}) => new Centrifuge(`ws://127.0.0.1:${s.port}/connection/websocket`,
    { websocket: WebSocket, timeout: SDK_TIMEOUT_MS, ...extra }),
  'WebSocket protobuf': (s, extra = {}) => new CentrifugePb(`ws://127.0.0.1:${s.port}/connection/websocket`,
    { websocket: WebSocket, timeout: SDK_TIMEOUT_MS, ...extra }),
};

const clients = new Set();

/**
 * The fetch the SDK is given (its public `fetch` option): the global fetch, plus bookkeeping in C of
 * the requests the client makes (c.emulationRequests: parsed bodies; c.emulationStatuses and
 * c.streamStatuses: HTTP statuses; c.settled(): resolves once every emulation request sent so far got
 * its response, i.e. its commands ran on the server) and optional extra request headers (e.g. Origin).
 */
function instrumentedFetch(c, emulationUrl, extraHeaders) {
  c.emulationRequests = [];
  c.emulationStatuses = [];
  c.streamStatuses = [];
  let pending = 0;
  let waiters = [];
  const wake = () => {
    if (pending !== 0) return;
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  c.settled = async () => {
    // The SDK sends from microtasks; let them run first.
    await new Promise((r) => setImmediate(r));
    if (pending === 0) return;
    await withTimeout(new Promise((r) => waiters.push(r)), SDK_TIMEOUT_MS, 'emulation requests answered');
  };
  return (url, options = {}) => {
    const opts = { ...options, headers: { ...(options.headers || {}), ...extraHeaders } };
    const isEmulation = String(url) === emulationUrl;
    if (!isEmulation) {
      const p = globalThis.fetch(url, opts);
      p.then((res) => c.streamStatuses.push(res.status), () => c.streamStatuses.push('network error'));
      return p;
    }
    try {
      c.emulationRequests.push(JSON.parse(opts.body));
    } catch {
      c.emulationRequests.push(opts.body);
    }
    pending++;
    const p = globalThis.fetch(url, opts);
    p.then((res) => c.emulationStatuses.push(res.status), () => c.emulationStatuses.push('network error'))
      .finally(() => {
        pending--;
        wake();
      });
    return p;
  };
}

/** Number of pongs (empty commands) among the emulation requests C has sent. */
export function pongsSent(c) {
  let n = 0;
  for (const req of c.emulationRequests) {
    if (!req || typeof req.data !== 'string') continue;
    for (const line of req.data.split('\n')) if (line.trim() === '{}') n++;
  }
  return n;
}

/**
 * A new (not yet connected) SDK client for BASE. Options: streamPath, emulationPath, emulationBase
 * (another node's base URL for the emulation POSTs), transport ('http_stream' or 'sse'), sdk (the
 * Centrifuge class: the protobuf build), headers (added to every request the SDK makes), plus any
 * Centrifuge option (e.g. token). Every client is tracked
 * so closeAllClients() can stop it.
 */
export function newClient(base, {
  streamPath = '/connection/http_stream',
  emulationPath = '/emulation',
  emulationBase = base,
  transport = 'http_stream',
  sdk = Centrifuge,
  headers = {},
  ...opts
} = {}) {
  const emulationEndpoint = emulationBase + emulationPath;
  const io = {};
  const c = new sdk([
    { transport, endpoint: base + streamPath },
  ], {
    emulationEndpoint,
    timeout: SDK_TIMEOUT_MS,
    minReconnectDelay: 200,
    maxReconnectDelay: 2000,
    fetch: instrumentedFetch(io, emulationEndpoint, headers),
    ...opts,
  });
  Object.assign(c, io);
  clients.add(c);
  // Unhandled 'error' events would throw out of the SDK's emitter; record them instead.
  c.errors = [];
  c.on('error', (ctx) => c.errors.push(ctx));
  return c;
}

/** A connected SDK client. */
export async function connectedClient(base, opts = {}) {
  const c = newClient(base, opts);
  const connected = once(c, 'connected', SDK_TIMEOUT_MS + 5000);
  c.connect();
  c.connectedCtx = await connected;
  return c;
}

/** Resolves with the first EVENT's argument emitted by EMITTER (a client or a subscription). */
export function once(emitter, event, timeoutMs = SDK_TIMEOUT_MS) {
  return withTimeout(new Promise((resolve) => emitter.once(event, resolve)), timeoutMs,
    `SDK event "${event}"`);
}

/**
 * Subscribes CLIENT to CHANNEL and waits for `subscribed`. The subscription collects publications in
 * sub.pubs and offers sub.nextPub(timeout).
 */
export async function subscribe(client, channel, opts = {}) {
  const sub = client.newSubscription(channel, opts);
  collectPublications(sub);
  sub.errors = [];
  sub.on('error', (ctx) => sub.errors.push(ctx));
  const subscribed = once(sub, 'subscribed', SDK_TIMEOUT_MS + 5000);
  sub.subscribe();
  sub.subscribedCtx = await subscribed;
  return sub;
}

/** Makes SUB record its publications: sub.pubs (all), sub.nextPub(timeoutMs) (consumes in order). */
export function collectPublications(sub) {
  sub.pubs = [];
  const pending = [];
  let waiters = [];
  sub.on('publication', (ctx) => {
    sub.pubs.push(ctx);
    pending.push(ctx);
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  sub.nextPub = (timeoutMs = SDK_TIMEOUT_MS) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiters = waiters.filter((f) => f !== check);
      reject(new Error(`no publication on ${sub.channel} within ${timeoutMs} ms (got so far: ` +
        `${JSON.stringify(sub.pubs.map((p) => p.data)).slice(0, 500)})`));
    }, timeoutMs);
    const check = () => {
      if (pending.length) {
        clearTimeout(timer);
        resolve(pending.shift());
      } else {
        waiters.push(check);
      }
    };
    check();
  });
  return sub;
}

/** Disconnects every SDK client created through this module (use in after()). */
export function closeAllClients() {
  for (const c of clients) {
    try {
      c.disconnect();
    } catch {
      // ignore
    }
  }
  clients.clear();
}
