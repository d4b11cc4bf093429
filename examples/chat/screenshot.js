// screenshot.js: takes docs/example-chat.png, the README's picture of the example chat page. With
// streamd running on examples/chat/streamd.conf and the repository root served on port 8080 (see the
// README's tour), `node examples/chat/screenshot.js [PAGE_URL] [OUT_FILE]` opens the page twice in
// Debian's Chromium (playwright-core from tests/node_modules, run `npm ci` in tests/ first), as "alice"
// and "bob", has them exchange a few messages as a user would (typing and pressing Send) and saves a
// picture of alice's page. It fails when a page does not show what was sent.
'use strict';

const path = require('node:path');

const repo = path.resolve(__dirname, '..', '..');
const { chromium } = require(require.resolve('playwright-core', { paths: [path.join(repo, 'tests')] }));

const pageUrl = process.argv[2] || 'http://localhost:8080/examples/chat/';
const outFile = path.resolve(process.argv[3] || path.join(repo, 'docs', 'example-chat.png'));
const WAIT_MS = 20000;

const CONVERSATION = [
  ['alice', 'Morning! Is the new build on staging?'],
  ['bob', 'Yes, deployed ten minutes ago.'],
  ['alice', 'Great. The page came back by itself after the restart.'],
  ['bob', 'Recovery and history: a reload shows the last 50 messages.'],
];

/** Opens the chat page as NAME in a browser context of its own; resolves when it is connected. */
async function open(browser, name) {
  const context = await browser.newContext({ viewport: { width: 820, height: 360 } });
  const page = await context.newPage();
  const url = new URL(pageUrl);
  url.searchParams.set('name', name);
  await page.goto(url.href);
  await page.waitForFunction(() => document.getElementById('state').textContent === 'connected',
    null, { timeout: WAIT_MS });
  return page;
}

/** Waits until PAGE's message list shows TEXT written by WHO. */
function waitMessage(page, who, text) {
  return page.waitForFunction(([w, t]) => [...document.querySelectorAll('#messages li')].some((li) =>
    li.querySelector('.who').textContent === w && li.querySelector('.text').textContent === t),
  [who, text], { timeout: WAIT_MS });
}

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.STREAMD_CHROMIUM || '/usr/bin/chromium' });
  try {
    const pages = { alice: await open(browser, 'alice'), bob: await open(browser, 'bob') };
    for (const [who, text] of CONVERSATION) {
      await pages[who].fill('#text', text);
      await pages[who].click('#send button');
      await waitMessage(pages.alice, who, text);
      await waitMessage(pages.bob, who, text);
    }
    await pages.alice.waitForFunction(() => document.getElementById('presence').textContent.includes('bob'),
      null, { timeout: WAIT_MS });
    await pages.alice.screenshot({ path: outFile });
    console.log(`wrote ${outFile}`);
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
