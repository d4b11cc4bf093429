// Fixtures of the browser tests: Debian's Chromium driven by playwright-core (never a downloaded
// browser), a static server that plays the web site (the test page and the SDK's browser bundles
// from node_modules/centrifuge/dist, on a loopback port of its own, so the page's origin is not
// streamd's), and a TCP recorder that shows which requests went over which connection.
//
//   const browser = await launchBrowser();           // in before(); closeBrowser() in after()
//   const site = await startSite();                  // site.origin = "http://127.0.0.1:PORT"
//   const p = await openPage(browser, site, { endpoints, options, bundle, channel });
//   await p.waitState('connected'); await p.waitMessage('{"n":1}'); await p.send('hi');
//
// chromiumSkip is a reason to skip (a string) when /usr/bin/chromium is missing, else false.
import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.STREAMD_CHROMIUM || '/usr/bin/chromium';
export const chromiumSkip = !existsSync(CHROMIUM) &&
  `${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium)`;

// Generous: the tests also run against an ASan build on a small shared machine.
export const WAIT_MS = 20000;

const here = path.dirname(fileURLToPath(import.meta.url));
const pageDir = path.resolve(here, '..', 'page');
const sdkDir = path.resolve(here, '..', '..', 'node_modules', 'centrifuge', 'dist');

/** The files the site serves: URL path ⇒ [file, content type]. */
const FILES = {
  '/': [path.join(pageDir, 'index.html'), 'text/html; charset=utf-8'],
  '/page.js': [path.join(pageDir, 'page.js'), 'text/javascript; charset=utf-8'],
  '/sdk/centrifuge.js': [path.join(sdkDir, 'centrifuge.js'), 'text/javascript; charset=utf-8'],
  '/sdk/centrifuge.protobuf.js': [path.join(sdkDir, 'centrifuge.protobuf.js'), 'text/javascript; charset=utf-8'],
};

/** Starts Chromium headless (playwright-core over CDP). */
export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true });
}

/** Starts the static site on a free loopback port; resolves with { origin, port, close() }. */
export async function startSite() {
  const server = createServer((req, res) => {
    const file = FILES[new URL(req.url, 'http://x').pathname];
    if (!file || req.method !== 'GET') {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-store' });
    res.end(readFileSync(file[0]));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

/**
 * Opens the test page of SITE in a fresh browser context (its own cache, so its own CORS preflight
 * cache) with PARAMS (see page/page.js). Resolves with helpers that read what the page shows.
 */
export async function openPage(browser, site, params) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) q.set(k, JSON.stringify(v));
  await page.goto(`${site.origin}/?${q}`);
  const p = {
    page,
    context,
    pageErrors,
    text: (sel) => page.textContent(sel),
    lines: (list) => page.$$eval(`#${list} li`, (lis) => lis.map((li) => li.textContent)),
    events: () => p.lines('events'),
    messages: () => p.lines('messages'),
    /** Waits until element #ID shows exactly TEXT. */
    async waitText(id, text) {
      await p.waitFor(`#${id} = ${JSON.stringify(text)}`, ([i, t]) =>
        document.getElementById(i).textContent === t, [id, text]);
    },
    waitState: (state) => p.waitText('state', state),
    /** Waits until list #LIST (events or messages) has a line equal to TEXT, or matching a RegExp. */
    async waitLine(list, text) {
      const re = text instanceof RegExp ? [text.source, text.flags] : null;
      await p.waitFor(`a line ${text} in #${list}`, ([l, t, r]) =>
        [...document.querySelectorAll(`#${l} li`)].some((li) =>
          (r ? new RegExp(r[0], r[1]).test(li.textContent) : li.textContent === t)), [list, String(text), re]);
    },
    waitMessage: (text) => p.waitLine('messages', text),
    /** Types TEXT into the form and presses Send, as a user would. */
    async send(text) {
      await page.fill('#text', text);
      await page.click('#send button');
    },
    async waitFor(what, fn, arg) {
      try {
        await page.waitForFunction(fn, arg, { timeout: WAIT_MS });
      } catch (err) {
        throw new Error(`the page never showed ${what}: ${err.message.split('\n')[0]}\n` +
          `state ${await p.text('#state')}, transport ${await p.text('#transport')}, ` +
          `subscription ${await p.text('#sub')}\nevents:\n  ${(await p.events()).join('\n  ')}\n` +
          `messages:\n  ${(await p.messages()).join('\n  ')}\npage errors: ${pageErrors.join('; ')}`);
      }
    },
    close: () => context.close(),
  };
  return p;
}

/**
 * A TCP relay on a free loopback port in front of 127.0.0.1:TARGET that records the request line of
 * every HTTP request a client sends, with the number of the connection it came on:
 * relay.requests = [{ conn: 1, method: 'OPTIONS', path: '/emulation' }, ...]. (A request line is
 * recognised at the start of a chunk or after a CRLF; bodies here are JSON or protobuf, which do not
 * look like one.)
 */
export async function startRecorder(target) {
  const sockets = new Set();
  let conns = 0;
  const relay = { requests: [], port: 0 };
  const server = net.createServer((client) => {
    const conn = ++conns;
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d) => {
      for (const m of d.toString('latin1').matchAll(/(?:^|\r\n)([A-Z]+) (\/\S*) HTTP\/1\.1\r\n/g)) {
        relay.requests.push({ conn, method: m[1], path: m[2].split('?')[0] });
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay.port = server.address().port;
  relay.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  };
  return relay;
}
