// The example chat page (examples/chat/) in headless Chromium, as a user runs it: streamd with the
// example's own configuration (examples/chat/streamd.conf; the test only lists its site's origin too
// and lets streamd pick a free port), the repository served by a static server of the test on another
// origin, the SDK bundle from tests/node_modules. Checked through what the pages show: two people in
// one room see each other present and see each other's messages, a reload shows the room's recent
// messages from history, and without WebSocket the page falls back to HTTP streaming.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, stopAll, STREAMD_BIN } from '../integration/lib/server.js';
import { chromiumSkip, launchBrowser, WAIT_MS } from './lib/browser.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const exampleConf = path.join(repoRoot, 'examples', 'chat', 'streamd.conf');

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.png': 'image/png' };

/** A static server of the repository root on a free loopback port (what `python3 -m http.server` does). */
async function startRepoSite() {
  const server = createServer(async (req, res) => {
    let rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.join(repoRoot, rel);
    if (req.method !== 'GET' || !file.startsWith(repoRoot + path.sep)) {
      res.writeHead(404).end('not found\n');
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
        'Cache-Control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found\n');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }) };
}

/**
 * The example's configuration with ORIGIN added to its allowed_origins (the test site's port is not
 * 8080) and EXTRA lines after it. It names neither address nor port: the fixture sets them.
 */
function exampleConfig(origin, extra = '') {
  const text = readFileSync(exampleConf, 'utf8');
  const re = /^allowed_origins = \[/m;
  assert.match(text, re, 'the example lists allowed_origins');
  return text.replace(re, `allowed_origins = [ "${origin}",`) + extra;
}

let browser, site;
let opened = [];
before(async () => {
  if (chromiumSkip) return;
  browser = await launchBrowser();
  site = await startRepoSite();
});
afterEach(async () => {
  for (const x of opened.reverse()) await x.close();
  opened = [];
  await stopAll();
});
after(async () => {
  if (browser) await browser.close();
  if (site) await site.close();
  await stopAll();
});

/** Opens the chat page for streamd SRV as NAME in a browser context of its own. */
async function openChat(srv, name) {
  const context = await browser.newContext();
  opened.push(context);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const q = new URLSearchParams({ server: srv.base, name });
  await page.goto(`${site.origin}/examples/chat/?${q}`);
  const p = {
    page,
    errors,
    text: (sel) => page.textContent(sel),
    /** The message list as "name: text" lines. */
    messages: () => page.$$eval('#messages li', (lis) =>
      lis.map((li) => `${li.querySelector('.who').textContent}: ${li.querySelector('.text').textContent}`)),
    presence: () => page.$$eval('#presence li', (lis) => lis.map((li) => li.textContent)),
    async waitFor(what, fn, arg) {
      try {
        await page.waitForFunction(fn, arg, { timeout: WAIT_MS });
      } catch (err) {
        throw new Error(`${name}'s page never showed ${what}: ${err.message.split('\n')[0]}\n` +
          `state ${await p.text('#state')} over ${await p.text('#transport')}, notice "${await p.text('#notice')}"\n` +
          `messages: ${JSON.stringify(await p.messages())}\npresence: ${JSON.stringify(await p.presence())}\n` +
          `page errors: ${errors.join('; ')}`);
      }
    },
    waitConnected: () => p.waitFor('the state "connected"', () =>
      document.getElementById('state').textContent === 'connected'),
    /** Waits until the message list holds LINE ("name: text"). */
    waitMessage: (line) => p.waitFor(`the message ${line}`, (l) =>
      [...document.querySelectorAll('#messages li')].some((li) =>
        `${li.querySelector('.who').textContent}: ${li.querySelector('.text').textContent}` === l), line),
    /** Waits until the presence list is exactly LABELS (sorted). */
    waitPresence: (labels) => p.waitFor(`presence ${JSON.stringify(labels)}`, (l) =>
      JSON.stringify([...document.querySelectorAll('#presence li')].map((li) => li.textContent)) === l,
    JSON.stringify(labels)),
    /** Waits until the presence list has N entries, one of them OWN and the others matching OTHER. */
    waitPresenceLike: (n, own, other) => p.waitFor(`${n} present, ${own} among them`, ([k, o, src]) => {
      const l = [...document.querySelectorAll('#presence li')].map((li) => li.textContent);
      return l.length === k && l.includes(o) && l.filter((x) => x !== o).every((x) => new RegExp(src).test(x));
    }, [n, own, other.source]),
    /** Types TEXT into the message box and presses Send, as a user does. */
    async send(text) {
      await page.fill('#text', text);
      await page.click('#send button');
    },
  };
  return p;
}

describe('the example chat page', { skip: chromiumSkip }, () => {
  test('examples/chat/streamd.conf checks as shipped', () => {
    const r = spawnSync(STREAMD_BIN, ['-t', '-c', exampleConf], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /configuration ok/);
  });

  test('two people: presence shows both, messages cross, a reload shows them from history', async () => {
    const srv = await startServer(exampleConfig(site.origin));
    const alice = await openChat(srv, 'alice');
    const bob = await openChat(srv, 'bob');
    for (const p of [alice, bob]) {
      await p.waitConnected();
      assert.equal(await p.text('#transport'), 'websocket');
      assert.equal(await p.text('#room'), 'chat:lobby');
    }
    // Neither has written yet: each sees the other as a guest, itself by its name.
    await alice.waitPresenceLike(2, 'alice (you)', /^guest [0-9a-f-]{8}$/);
    await bob.waitPresenceLike(2, 'bob (you)', /^guest [0-9a-f-]{8}$/);
    assert.equal(await alice.text('#present-count'), '2');

    await alice.send('hello from alice');
    await bob.waitMessage('alice: hello from alice');
    await alice.waitMessage('alice: hello from alice');
    await bob.waitPresence(['alice', 'bob (you)']); // now bob knows who that guest is
    // Text is shown as text: markup in a message is not interpreted.
    await bob.send('<b>not bold</b>');
    await alice.waitMessage('bob: <b>not bold</b>');
    assert.equal(await alice.page.$$eval('#messages b', (b) => b.length), 0);
    await alice.waitPresence(['alice (you)', 'bob']);

    // Bob reloads: the room's messages come back from history, in order and each once, and the
    // presence lists drop his old connection.
    await bob.page.reload();
    await bob.waitConnected();
    await bob.waitMessage('bob: <b>not bold</b>');
    assert.deepEqual(await bob.messages(), ['alice: hello from alice', 'bob: <b>not bold</b>']);
    await bob.waitPresence(['alice', 'bob (you)']);
    await alice.waitPresenceLike(2, 'alice (you)', /^(bob|guest [0-9a-f-]{8})$/);
    // Still live after the reload, both ways.
    await bob.send('back again');
    await alice.waitMessage('bob: back again');
    await alice.send('welcome back');
    await bob.waitMessage('alice: welcome back');
    await alice.waitMessage('alice: welcome back'); // her own echo may come after bob's copy
    assert.deepEqual(await alice.messages(), ['alice: hello from alice', 'bob: <b>not bold</b>',
      'bob: back again', 'alice: welcome back']);
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });

  test('WebSocket off: the page falls back to HTTP streaming and still chats', async () => {
    const srv = await startServer(exampleConfig(site.origin, 'websocket_disable = true;\n'));
    const carol = await openChat(srv, 'carol');
    await carol.waitConnected();
    assert.equal(await carol.text('#transport'), 'http_stream');
    await carol.waitPresence(['carol (you)']);
    await carol.send('over http_stream');
    await carol.waitMessage('carol: over http_stream');
    assert.deepEqual(carol.errors, []);
  });
});
