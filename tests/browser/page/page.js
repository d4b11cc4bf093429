// The browser tests' page: loads one of the SDK's browser bundles (the npm package's dist/centrifuge.js
// or dist/centrifuge.protobuf.js, served by the test under /sdk/), connects to the endpoints named in
// its URL and subscribes to one channel. Query parameters (all JSON, set by tests/browser/lib):
//   bundle     "json" (default) or "protobuf"
//   endpoints  the SDK's first argument: a WebSocket URL or a list of {transport, endpoint}
//   options    the SDK's options (emulationEndpoint, reconnect delays, ...)
//   channel    the channel to subscribe to (default "news")
// Everything the SDK reports is written into the page: #state, #transport, #sub, one #events line
// per event and one #messages line per publication (its data as JSON text).
'use strict';

const params = new URLSearchParams(location.search);
const json = (name, dflt) => (params.has(name) ? JSON.parse(params.get(name)) : dflt);
const bundle = json('bundle', 'json');
const protobuf = bundle === 'protobuf';

function show(id, text) {
  document.getElementById(id).textContent = text;
}

function line(list, text) {
  const li = document.createElement('li');
  li.textContent = text;
  document.getElementById(list).appendChild(li);
}

// Publication data: JSON values with the JSON bundle, bytes (JSON text here) with the protobuf one.
function decode(data) {
  return protobuf ? new TextDecoder().decode(data) : JSON.stringify(data);
}

function encode(value) {
  return protobuf ? new TextEncoder().encode(JSON.stringify(value)) : value;
}

function start() {
  const client = new Centrifuge(json('endpoints'), json('options', {}));
  client.on('connecting', (ctx) => {
    show('state', 'connecting');
    line('events', `connecting ${ctx.code} ${ctx.reason}`);
  });
  client.on('connected', (ctx) => {
    show('state', 'connected');
    show('transport', ctx.transport);
    line('events', `connected ${ctx.transport}`);
  });
  client.on('disconnected', (ctx) => {
    show('state', 'disconnected');
    line('events', `disconnected ${ctx.code} ${ctx.reason}`);
  });
  client.on('error', (ctx) => line('events', `error ${ctx.type} ${ctx.error && ctx.error.message}`));

  const sub = client.newSubscription(json('channel', 'news'));
  sub.on('subscribing', (ctx) => {
    show('sub', 'subscribing');
    line('events', `subscribing ${ctx.code} ${ctx.reason}`);
  });
  sub.on('subscribed', () => {
    show('sub', 'subscribed');
    line('events', 'subscribed');
  });
  sub.on('error', (ctx) => line('events', `subscription error ${ctx.type} ${ctx.error && ctx.error.message}`));
  sub.on('publication', (ctx) => line('messages', decode(ctx.data)));
  sub.subscribe();
  client.connect();

  document.getElementById('send').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = document.getElementById('text');
    sub.publish(encode({ text: input.value })).then(
      () => line('events', 'published'),
      (err) => line('events', `publish failed ${err.code} ${err.message}`));
    input.value = '';
  });
}

const script = document.createElement('script');
script.src = `/sdk/${protobuf ? 'centrifuge.protobuf.js' : 'centrifuge.js'}`;
script.onload = start;
script.onerror = () => show('state', 'SDK bundle did not load');
document.head.appendChild(script);
