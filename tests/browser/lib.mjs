// Shared by the browser scenarios: launch Debian's chromium (never a downloaded browser),
// log in through the login page, save screenshots, and fail loudly with what the page showed.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const url = process.env.RELFLOW_URL;
export const token = process.env.RELFLOW_TOKEN;
export const viewerToken = process.env.RELFLOW_VIEWER_TOKEN;
const shots = process.env.RELFLOW_SCREENSHOTS || 'browser-screenshots';
// Waits for what a person would see; generous because CI machines are slow, never a sleep.
export const patience = Number(process.env.RELFLOW_BROWSER_TIMEOUT_MS || 60000);

export async function launch() {
  if (!url) throw new Error('RELFLOW_URL is not set: run me from tests/e2e/serve_browser.rs');
  // A fresh profile every run (playwright passes it as --user-data-dir).
  const profile = mkdtempSync(join(tmpdir(), 'relflow-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.RELFLOW_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
  });
  context.setDefaultTimeout(patience);
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  const browser = { close: async () => { await context.close(); rmSync(profile, { recursive: true, force: true }); } };
  return { browser, context, page };
}

/// Logs in with `secret` through the form and lands on the release list.
export async function logIn(page, secret) {
  await page.goto(`${url}/login`);
  await page.fill('input[name=token]', secret);
  await Promise.all([page.waitForURL(`${url}/`), page.click('button[type=submit]')]);
}

export async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

/// Marks the document so a later check can tell it was never reloaded.
export async function markDocument(page) {
  await page.evaluate(() => { window.__relflowMark = 'same-document'; });
}

export async function assertSameDocument(page, what) {
  const mark = await page.evaluate(() => window.__relflowMark);
  if (mark !== 'same-document') throw new Error(`the page was reloaded while ${what}`);
}

export function check(cond, message) {
  if (!cond) throw new Error(message);
}

/// Waits until the text of `selector` contains `text` (polled in the page, no sleeps).
export async function waitForText(page, selector, text) {
  await page.waitForFunction(
    ([sel, t]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(t)),
    [selector, text], { timeout: patience });
}

/// Runs a scenario: prints `ok` on success, the error and the page's text on failure.
export async function scenario(name, body) {
  const { browser, page } = await launch();
  try {
    await body(page);
    console.log(`ok: ${name}`);
  } catch (e) {
    console.log(`FAILED: ${name}: ${e.stack || e}`);
    try {
      await screenshot(page, `${name}-failure`);
      console.log(`--- page text at failure (${page.url()})\n${await page.innerText('body')}`);
    } catch (inner) { console.log(`(no page text: ${inner})`); }
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
