// The admin socket and streamctl against the real binaries, with SDK clients (centrifuge 5.8.0) connected
// over http_stream: inspection (sessions, session, channels, channel, info), actions (publish, message,
// disconnect, unsubscribe), watch, the CLI's exit statuses and modes, and the socket file's life.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { api } from './lib/http.js';
import { connectedClient, subscribe, closeAllClients, once } from './lib/sdk.js';
import { connectRaw, closeAllRaw } from './lib/raw.js';
import {
  startAdminServer, streamctl, streamctlJson, watchChannel, rawAdmin, adminDir, removeAdminDirs,
} from './lib/admin.js';

/** The session row of CLIENT (an SDK client) in `sessions --json`. */
async function sessionRow(socket, client) {
  const res = await streamctlJson(socket, ['sessions']);
  return res.result.sessions.find((s) => s.client === client.connectedCtx.client);
}

describe('admin socket and streamctl', () => {
  let srv;
  let socket;

  before(async () => {
    ({ srv, socket } = await startAdminServer({ ...BASE_CONFIG, admin_socket_mode: '0640' }));
  });

  after(async () => {
    closeAllClients();
    await stopAll();
    removeAdminDirs();
  });

  it('logs the socket and creates it with the configured mode', () => {
    assert.match(srv.stderr, new RegExp(`admin socket ${socket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const st = statSync(socket);
    assert.ok(st.isSocket(), 'a socket');
    assert.equal(st.mode & 0o777, 0o640);
  });

  it('sessions and session ID show a connected client, --json carries the same data', async () => {
    const c = await connectedClient(srv.base);
    const clientId = c.connectedCtx.client;

    const table = await streamctl(socket, ['sessions']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^CLIENT\s+SESSION\s+USER\s+TRANSPORT\s+PROTOCOL\s+REMOTE\s+CONNECTED\s+SUBS\s+QUEUED$/m);
    const line = table.stdout.split('\n').find((l) => l.startsWith(clientId));
    assert.ok(line, `a row for ${clientId} in:\n${table.stdout}`);
    assert.match(line, /http_stream\s+json\s+127\.0\.0\.1\s+\S+\s+0\s+\d+(\.\d)? (B|KiB)$/);

    const row = await sessionRow(socket, c);
    assert.ok(row, 'the client in sessions --json');
    assert.equal(row.transport, 'http_stream');
    assert.equal(row.protocol, 'json');
    assert.equal(row.user, '');
    assert.equal(row.remote, '127.0.0.1');
    assert.equal(row.subscriptions, 0);
    assert.ok(Number.isInteger(row.connected_ms) && Number.isInteger(row.queued_bytes));
    assert.ok(line.includes(row.session), 'the table shows the same session id');

    for (const id of [clientId, row.session]) {
      const full = await streamctl(socket, ['session', id]);
      assert.equal(full.code, 0, full.stderr);
      assert.match(full.stdout, new RegExp(`^client\\s+${clientId}$`, 'm'));
      assert.match(full.stdout, new RegExp(`^session\\s+${row.session}$`, 'm'));
      assert.match(full.stdout, /^transport\s+http_stream$/m);
      assert.match(full.stdout, /^state\s+connected$/m);
      assert.match(full.stdout, /^last pong\s+/m);
    }
    const json = await streamctlJson(socket, ['session', clientId]);
    assert.equal(json.result.client, clientId);
    assert.equal(json.result.session, row.session);
    assert.equal(json.result.transport, 'http_stream');
    assert.deepEqual(json.result.channels, []);
    assert.ok(json.result.messages_in >= 1, 'the connect command was counted');
    assert.ok(json.result.bytes_out > 0);

    const filtered = await streamctlJson(socket, ['sessions', '--user', 'nobody']);
    assert.deepEqual(filtered.result.sessions, []);
    c.disconnect();
  });

  it('publish reaches a subscribed SDK client', async () => {
    const c = await connectedClient(srv.base);
    const sub = await subscribe(c, 'news');
    const r = await streamctl(socket, ['publish', 'news', '{"text":"from streamctl","n":1}']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'published to news\n');
    const pub = await sub.nextPub();
    assert.deepEqual(pub.data, { text: 'from streamctl', n: 1 });
    c.disconnect();
  });

  it('message reaches exactly one session', async () => {
    const a = await connectedClient(srv.base);
    const b = await connectedClient(srv.base);
    const got = { a: [], b: [] };
    a.on('message', (ctx) => got.a.push(ctx.data));
    b.on('message', (ctx) => got.b.push(ctx.data));
    const received = once(a, 'message');
    const r = await streamctl(socket, ['message', a.connectedCtx.client, '{"hello":"a"}']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await received).data, { hello: 'a' });
    // b gets nothing: a second message to b arrives, and it is the only one b saw.
    const receivedB = once(b, 'message');
    await streamctl(socket, ['message', b.connectedCtx.client, '2']);
    assert.equal((await receivedB).data, 2);
    assert.deepEqual(got.b, [2]);
    assert.deepEqual(got.a, [{ hello: 'a' }]);
    a.disconnect();
    b.disconnect();
  });

  it('channels and channel show subscriber counts', async () => {
    const a = await connectedClient(srv.base);
    const b = await connectedClient(srv.base);
    await subscribe(a, 'room');
    await subscribe(b, 'room');
    await subscribe(a, 'lobby');

    const json = await streamctlJson(socket, ['channels']);
    const counts = Object.fromEntries(json.result.channels.map((ch) => [ch.channel, ch.subscribers]));
    assert.equal(counts.room, 2);
    assert.equal(counts.lobby, 1);
    const table = await streamctl(socket, ['channels']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^CHANNEL\s+SUBSCRIBERS\s+PUBS\s+OFFSET\s+HISTORY\s+PRESENCE$/m);
    assert.match(table.stdout, /^room\s+2\s+-\s+-\s+off\s+off$/m);
    const only = await streamctlJson(socket, ['channels', 'lob*']);
    assert.deepEqual(only.result.channels.map((ch) => ch.channel), ['lobby']);

    const one = await streamctlJson(socket, ['channel', 'room']);
    assert.equal(one.result.subscribers, 2);
    assert.deepEqual(one.result.clients.map((x) => x.client).sort(),
      [a.connectedCtx.client, b.connectedCtx.client].sort());
    const human = await streamctl(socket, ['channel', 'room']);
    assert.match(human.stdout, /^subscribers\s+2$/m);
    assert.ok(human.stdout.includes(a.connectedCtx.client));

    const s = await streamctlJson(socket, ['session', a.connectedCtx.client]);
    assert.deepEqual(s.result.channels.sort(), ['lobby', 'room']);
    const filtered = await streamctlJson(socket, ['sessions', '--channel', 'lobby']);
    assert.deepEqual(filtered.result.sessions.map((x) => x.client), [a.connectedCtx.client]);
    a.disconnect();
    b.disconnect();
  });

  it('unsubscribe ends the client subscription with code 2000', async () => {
    const c = await connectedClient(srv.base);
    const sub = await subscribe(c, 'kick-me');
    const unsubscribed = once(sub, 'unsubscribed');
    const r = await streamctl(socket, ['unsubscribe', c.connectedCtx.client, 'kick-me']);
    assert.equal(r.code, 0, r.stderr);
    const ctx = await unsubscribed;
    assert.equal(ctx.code, 2000);
    assert.equal(sub.state, 'unsubscribed');
    const again = await streamctl(socket, ['unsubscribe', c.connectedCtx.client, 'kick-me']);
    assert.equal(again.code, 1, 'not subscribed any more: a server error');
    assert.match(again.stderr, /not subscribed/);
    c.disconnect();
  });

  it('disconnect: the client gets 3503 and stays disconnected', async () => {
    const c = await connectedClient(srv.base);
    const disconnected = once(c, 'disconnected');
    const r = await streamctl(socket, ['disconnect', c.connectedCtx.client]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /code 3503/);
    const ctx = await disconnected;
    assert.equal(ctx.code, 3503);
    assert.equal(c.state, 'disconnected');
  });

  it('disconnect --code --reason passes both to the client', async () => {
    // 4500-4999 are terminal codes for the SDK (disconnected); 4000-4499 make it reconnect (connecting).
    const c = await connectedClient(srv.base);
    const disconnected = once(c, 'disconnected');
    const r = await streamctl(socket, ['disconnect', c.connectedCtx.client, '--code', '4501', '--reason', 'maintenance']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await disconnected, { code: 4501, reason: 'maintenance' });

    const d = await connectedClient(srv.base);
    const reconnecting = once(d, 'connecting');
    await streamctl(socket, ['disconnect', d.connectedCtx.client, '--code=4001', '--reason', 'come back']);
    assert.deepEqual(await reconnecting, { code: 4001, reason: 'come back' });
    d.disconnect();
  });

  it('watch prints a publication made through the HTTP API', async () => {
    const w = watchChannel(socket, 'watched');
    const wj = watchChannel(socket, 'watched', { json: true });
    await Promise.all([w.ready, wj.ready]);
    const res = await api(srv.base, 'publish', { channel: 'watched', data: { via: 'api', n: 7 } }, { key: API_KEY });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { result: {} });
    const line = await w.nextLine();
    assert.match(line, /^\d\d:\d\d:\d\d {2}watched {2}\{"via":"api","n":7\}$/);
    const jline = JSON.parse(await wj.nextLine());
    assert.equal(jline.channel, 'watched');
    assert.deepEqual(jline.publication.data, { via: 'api', n: 7 });
    // Publications on other channels are not shown; the next one on this channel is.
    await api(srv.base, 'publish', { channel: 'other', data: 1 }, { key: API_KEY });
    await api(srv.base, 'publish', { channel: 'watched', data: 2 }, { key: API_KEY });
    assert.equal(JSON.parse(await wj.nextLine()).publication.data, 2);
    assert.match(await w.nextLine(), /^\d\d:\d\d:\d\d {2}watched {2}2$/); // both watchers saw it before they stop
    for (const x of [w, wj]) {
      const r = await x.stop();
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(w.lines.length, 2);
  });

  // Terminal escape-sequence injection: fields a client chose (its name and version, publication data)
  // are printed with control characters and invalid UTF-8 escaped (\xHH, \u0085); --json output stays
  // valid JSON with the exact values.
  it('client-supplied text is printed escaped, never as raw control characters', async () => {
    const name = '\u001b]0;pwned\u0007\u001b[2J';
    const version = 'v1\u009b31m\r';
    const raw = await connectRaw(srv.base, { connect: { name, version } });
    const hasControl = (text) => /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(text);
    const one = await streamctl(socket, ['session', raw.client]);
    assert.equal(one.code, 0, one.stderr);
    assert.ok(!hasControl(one.stdout), JSON.stringify(one.stdout));
    assert.match(one.stdout, /sdk +\\x1b\]0;pwned\\x07\\x1b\[2J v1\\u009b31m\\r\n/);
    const json = await streamctlJson(socket, ['session', raw.client]);
    assert.equal(json.result.name, name);
    assert.equal(json.result.version, version);

    const w = watchChannel(socket, 'escaped');
    await w.ready;
    await api(srv.base, 'publish', { channel: 'escaped', data: { t: '\u009b2J\u001b[31m' } }, { key: API_KEY });
    const line = await w.nextLine();
    assert.ok(!hasControl(line), JSON.stringify(line));
    assert.match(line, /escaped {2}\{"t":"\\u009b2J\\u001[bB]\[31m"\}$/);
    assert.equal((await w.stop()).code, 0);
    raw.close();
    closeAllRaw();
  });

  it('info mirrors the API info', async () => {
    const c = await connectedClient(srv.base);
    const res = await streamctlJson(socket, ['info']);
    assert.match(res.result.uid, /^[0-9a-f-]{36}$/);
    assert.ok(res.result.num_clients >= 1);
    assert.ok(res.result.uptime_ms >= 0);
    assert.ok(res.result.version);
    assert.equal(res.result.num_users, 0, 'anonymous connections only: no user');
    const human = await streamctl(socket, ['info']);
    assert.match(human.stdout, new RegExp(`^node\\s+${res.result.uid}$`, 'm'));
    assert.match(human.stdout, /^users\s+0$/m);
    assert.match(human.stdout, /^uptime\s+\d+(ms|s|m\d+s|h\d+m)$/m);
    c.disconnect();
  });

  it('unreachable socket: exit 3 and the path in the message', async () => {
    const missing = path.join(adminDir(), 'nobody-here.sock');
    const r = await streamctl(missing, ['info']);
    assert.equal(r.code, 3);
    assert.ok(r.stderr.includes(missing), r.stderr);
    const env = await streamctl(null, ['sessions'], { env: { STREAMCTL_SOCKET: missing } });
    assert.equal(env.code, 3, 'STREAMCTL_SOCKET is used');
    assert.ok(env.stderr.includes(missing), env.stderr);
  });

  it('STREAMCTL_SOCKET selects the socket', async () => {
    const r = await streamctl(null, ['--json', 'info'], { env: { STREAMCTL_SOCKET: socket } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).result.uid);
  });

  it('usage errors exit 2 without asking the server; server errors exit 1', async () => {
    const unknown = await streamctl(socket, ['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    for (const args of [['session'], ['disconnect', 'x', '--code', 'abc'], ['sessions', '--bogus', '1'],
      ['publish', 'news', '{not json']]) {
      const r = await streamctl(socket, args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    const missing = path.join(adminDir(), 'none.sock');
    assert.equal((await streamctl(missing, ['frobnicate'])).code, 2, 'usage is checked before connecting');
    const noSession = await streamctl(socket, ['session', 'no-such-id']);
    assert.equal(noSession.code, 1);
    assert.match(noSession.stderr, /no such session/);
    const json = await streamctl(socket, ['--json', 'session', 'no-such-id']);
    assert.equal(json.code, 1);
    assert.match(JSON.parse(json.stdout).error, /no such session/);
    const help = await streamctl(missing, ['help', 'disconnect']);
    assert.equal(help.code, 0, 'help needs no server');
    assert.match(help.stdout, /^Usage: streamctl disconnect ID \[--code N\] \[--reason TEXT\]$/m);
  });

  it('reads commands from a pipe', async () => {
    const c = await connectedClient(srv.base);
    const input = 'info\n# a comment\n\nsessions\nchannels\n';
    const r = await streamctl(socket, ['--json'], { input });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.ok(lines[0].result.uid);
    assert.ok(lines[1].result.sessions.some((s) => s.client === c.connectedCtx.client));
    assert.ok(Array.isArray(lines[2].result.channels));

    const mixed = await streamctl(socket, [], { input: `session ${c.connectedCtx.client}\nbogus\ninfo\n` });
    assert.equal(mixed.code, 2, 'the status of the last command that failed');
    assert.match(mixed.stdout, /^client\s+/m);
    assert.match(mixed.stdout, /^uptime\s+/m, 'commands after a failing one still run');
    c.disconnect();
  });

  it('the shell takes JSON as typed: from a { or [ the rest of the line is the argument', async () => {
    const c = await connectedClient(srv.base);
    const sub = await subscribe(c, 'typed');
    const input = 'publish typed {"text": "it\'s typed", "n": [1, 2]}\npublish typed [1, "two"]  \n';
    const r = await streamctl(socket, [], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await sub.nextPub()).data, { text: "it's typed", n: [1, 2] });
    assert.deepEqual((await sub.nextPub()).data, [1, 'two']);
    const bad = await streamctl(socket, [], { input: 'publish typed {"a": 1} trailing\n' });
    assert.equal(bad.code, 2, 'what follows the JSON is part of it: a usage error, nothing published');
    assert.match(bad.stderr, /DATA is not valid JSON/);
    c.disconnect();
  });

  it('malformed and oversized requests get errors and do not disturb streaming clients', async () => {
    const c = await connectedClient(srv.base);
    const sub = await subscribe(c, 'steady');
    const raw = await rawAdmin(socket);
    raw.send('this is not json\n');
    assert.match(JSON.parse(await raw.nextLine()).error, /malformed JSON/);
    raw.send('x'.repeat(70 * 1024) + '\n');
    assert.match(JSON.parse(await raw.nextLine()).error, /too large/);
    assert.match((await raw.request({ cmd: 'nope' })).error, /unknown command/);
    assert.match((await raw.request({ cmd: 'session', args: { id: 5 } })).error, /must be a string/);
    assert.match((await raw.request({ cmd: 'watch' })).error, /needs "channel"/);
    const info = await raw.request({ cmd: 'info' });
    assert.ok(info.result.num_clients >= 1, 'the connection still serves requests');
    // Many admin clients at once, one of them idle.
    const others = await Promise.all([1, 2, 3, 4, 5].map(() => streamctlJson(socket, ['sessions'])));
    for (const o of others) assert.ok(o.result.sessions.length >= 1);
    raw.close();
    await api(srv.base, 'publish', { channel: 'steady', data: { ok: true } }, { key: API_KEY });
    assert.deepEqual((await sub.nextPub()).data, { ok: true });
    assert.equal(c.state, 'connected');
    c.disconnect();
  });
});

describe('admin socket file handling', () => {
  after(async () => {
    closeAllClients();
    await stopAll();
    removeAdminDirs();
  });

  it('refuses to start when the path exists and is not a socket', async () => {
    const file = path.join(adminDir(), 'admin.sock');
    writeFileSync(file, 'precious');
    await assert.rejects(startServer({ ...BASE_CONFIG, admin_socket: file }),
      (err) => err.message.includes(`admin socket ${file}`) && err.message.includes('not a socket'));
    assert.equal(readFileSync(file, 'utf8'), 'precious', 'the file is left alone');
  });

  it('refuses to start when another server listens on the socket', async () => {
    const { socket } = await startAdminServer({ ...BASE_CONFIG });
    await assert.rejects(startServer({ ...BASE_CONFIG, admin_socket: socket }),
      (err) => err.message.includes('another process is listening'));
    assert.equal((await streamctl(socket, ['info'])).code, 0, 'the first server still answers');
  });

  it('replaces a stale socket, removes its own on stop', async () => {
    const { srv, socket } = await startAdminServer({ ...BASE_CONFIG });
    await srv.stop('SIGKILL'); // leaves the socket file behind, with nobody listening
    assert.ok(existsSync(socket));
    const second = await startAdminServer({ ...BASE_CONFIG }, { socket });
    assert.match(second.srv.stderr, /removed stale admin socket/);
    assert.equal((await streamctl(socket, ['info'])).code, 0);
    const r = await second.srv.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(socket), 'the socket file is removed on shutdown');
  });

  it('shuts down cleanly with a watcher and an idle admin client connected', async () => {
    const { srv, socket } = await startAdminServer({ ...BASE_CONFIG });
    const w = watchChannel(socket, 'any');
    await w.ready;
    const raw = await rawAdmin(socket);
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
    const ended = await w.exited;
    assert.equal(ended.code, 1, 'the watch ends with the server');
    assert.match(ended.stderr, /ended the watch/);
    raw.close();
  });
});
