// app.js: the example chat page's logic (examples/chat/index.html). It connects the official SDK
// (the global Centrifuge of its browser bundle) to streamd, WebSocket first and HTTP streaming as the
// fallback, joins one room (channel "chat:ROOM") and keeps the page in step with it: the connection
// state, the room's messages (its recent history when it subscribes, then each publication, in offset
// order and each once), a form that publishes {name, text, time} into the room, and who is present
// (the presence list when it subscribes, then the join and leave events).
//
// Query parameters: server (streamd's base URL, default http://127.0.0.1:8000), room (default
// "lobby"), name (the name to write under; else the last one used on this browser, else a guest name).
// Everything received is put into the page as text (textContent), never as HTML.
'use strict';

(function main() {
  const HISTORY_LIMIT = 50;
  const params = new URLSearchParams(location.search);
  const server = (params.get('server') || 'http://127.0.0.1:8000').replace(/\/+$/, '');
  const channel = `chat:${params.get('room') || 'lobby'}`;

  const $ = (id) => document.getElementById(id);
  const nameInput = $('name');
  nameInput.value = params.get('name') || localStorage.getItem('streamd-chat-name') ||
    `guest-${Math.floor(1000 + Math.random() * 9000)}`;
  $('room').textContent = channel;
  $('server').textContent = server;

  /** Shows TEXT in the notice line under the header ('' hides it). */
  function notice(text) {
    $('notice').textContent = text;
    $('notice').hidden = !text;
  }

  /** Shows the connection state (connecting, connected, disconnected) in the header. */
  function showState(state) {
    $('state').textContent = state;
    $('state').className = `state ${state}`;
  }

  if (typeof Centrifuge === 'undefined') {
    showState('disconnected');
    notice('The SDK bundle did not load: run `npm ci` in tests/ and serve the repository root.');
    return;
  }

  // ---- Messages: one <li> per publication, ordered by offset, each offset shown once ----

  let epoch = ''; // the room's history stream; offsets of another epoch are another stream
  const list = $('messages');

  function clearMessages() {
    list.replaceChildren();
  }

  /** The text a publication's data shows as: a chat message's text, else its JSON. */
  function describe(data) {
    if (data && typeof data === 'object' && typeof data.text === 'string') {
      return {
        who: typeof data.name === 'string' && data.name ? data.name : 'someone',
        text: data.text,
        when: typeof data.time === 'string' ? new Date(data.time) : null,
      };
    }
    return { who: 'server', text: JSON.stringify(data), when: null };
  }

  /** Adds publication PUB ({data, offset, info}) to the list unless its offset is already there. */
  function addMessage(pub) {
    const offset = pub.offset === undefined ? null : String(pub.offset);
    if (offset !== null && list.querySelector(`li[data-offset="${offset}"]`)) return;
    const m = describe(pub.data);
    const li = document.createElement('li');
    if (offset !== null) li.dataset.offset = offset;
    const when = document.createElement('span');
    when.className = 'when';
    if (m.when && !Number.isNaN(m.when.getTime())) {
      when.textContent = m.when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    }
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = m.who;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = m.text;
    li.append(when, who, text);
    if (pub.info && pub.info.client) rememberName(pub.info.client, m.who);

    // Before the first message with a greater offset; publications without one go last.
    const later = offset === null ? null : [...list.children].find((x) =>
      x.dataset.offset !== undefined && Number(x.dataset.offset) > Number(offset));
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.insertBefore(li, later || null);
    while (list.children.length > 2 * HISTORY_LIMIT) list.firstElementChild.remove();
    if (atBottom || !later) list.scrollTop = list.scrollHeight;
  }

  // ---- Presence: the room's connections, by the name they last wrote under ----

  let myClient = '';
  const present = new Map(); // client id => ClientInfo
  const names = new Map(); // client id => name seen in its messages

  function rememberName(client, name) {
    if (names.get(client) === name) return;
    names.set(client, name);
    renderPresence();
  }

  function renderPresence() {
    const items = [...present.keys()].map((client) => {
      if (client === myClient) return `${nameInput.value || 'you'} (you)`;
      return names.get(client) || `guest ${client.slice(0, 8)}`;
    }).sort();
    $('presence').replaceChildren(...items.map((label) => {
      const li = document.createElement('li');
      li.textContent = label;
      return li;
    }));
    $('present-count').textContent = String(present.size);
  }

  // ---- The connection: WebSocket, else HTTP streaming with emulation POSTs to /emulation ----

  const client = new Centrifuge([
    { transport: 'websocket', endpoint: `${server.replace(/^http/, 'ws')}/connection/websocket` },
    { transport: 'http_stream', endpoint: `${server}/connection/http_stream` },
  ], {
    emulationEndpoint: `${server}/emulation`,
  });

  client.on('connecting', (ctx) => {
    showState('connecting');
    if (ctx.code !== 0) notice(`reconnecting: ${ctx.reason} (${ctx.code})`);
  });
  client.on('connected', (ctx) => {
    myClient = ctx.client;
    showState('connected');
    $('transport').textContent = ctx.transport;
    notice('');
  });
  client.on('disconnected', (ctx) => {
    showState('disconnected');
    notice(`disconnected: ${ctx.reason} (${ctx.code})`);
  });

  const sub = client.newSubscription(channel, { joinLeave: true });

  sub.on('subscribed', (ctx) => {
    const pos = ctx.streamPosition;
    if (pos && epoch && pos.epoch !== epoch) clearMessages(); // the stream was reset: its offsets start again
    if (pos) epoch = pos.epoch;
    sub.history({ limit: HISTORY_LIMIT, reverse: true }).then((h) => {
      if (epoch && h.epoch !== epoch) return; // a later subscribe already answered for another stream
      epoch = h.epoch;
      h.publications.forEach(addMessage);
    }, (err) => notice(`history failed: ${err.message} (${err.code})`));
    sub.presence().then((p) => {
      present.clear();
      for (const [id, info] of Object.entries(p.clients)) present.set(id, info);
      renderPresence();
    }, (err) => notice(`presence failed: ${err.message} (${err.code})`));
  });
  sub.on('error', (ctx) => notice(`subscription: ${ctx.error.message} (${ctx.error.code})`));
  sub.on('publication', addMessage);
  sub.on('join', (ctx) => {
    present.set(ctx.info.client, ctx.info);
    renderPresence();
  });
  sub.on('leave', (ctx) => {
    present.delete(ctx.info.client);
    renderPresence();
  });

  $('send').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('text');
    const text = input.value.trim();
    const name = nameInput.value.trim() || 'someone';
    if (!text) return;
    localStorage.setItem('streamd-chat-name', name);
    sub.publish({ name, text, time: new Date().toISOString() }).then(() => {
      input.value = '';
    }, (err) => notice(`not sent: ${err.message} (${err.code})`));
  });
  nameInput.addEventListener('change', renderPresence);

  sub.subscribe();
  client.connect();
}());
