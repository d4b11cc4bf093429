// What the browser tests check on every page: the SDK's transport list, a publication through the
// server API, and the round trip of a connected page (API publication and the form's own publish shown).
import assert from 'node:assert/strict';
import { API_KEY } from '../../integration/lib/server.js';
import { api } from '../../integration/lib/http.js';

export const ws = (base) => base.replace(/^http/, 'ws') + '/connection/websocket';

/** The SDK's transport list: WebSocket first, then HTTP streaming (the usual browser set-up). */
export function fallback(base) {
  return [
    { transport: 'websocket', endpoint: ws(base) },
    { transport: 'http_stream', endpoint: `${base}/connection/http_stream` },
  ];
}

export async function publish(srv, channel, data) {
  const res = await api(srv.base, 'publish', { channel, data }, { key: API_KEY });
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json.error, undefined, res.body);
}

/** The page is connected over TRANSPORT and subscribed; the API's and the form's publications show. */
export async function roundTrip(p, srv, transport, channel = 'news') {
  await p.waitState('connected');
  assert.equal(await p.text('#transport'), transport);
  await p.waitText('sub', 'subscribed');
  await publish(srv, channel, { from: 'api' });
  await p.waitMessage('{"from":"api"}');
  await p.send('hello from the form');
  await p.waitLine('events', 'published');
  await p.waitMessage('{"text":"hello from the form"}');
  assert.deepEqual(p.pageErrors, []);
}
