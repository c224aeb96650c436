// Event → page update latency, measured in the browser: start a release of the bench pipeline
// (a task every ~200 ms) from the start form, stay on its page until it completes, then read
// the page's own record of each swap (event time from the event's `ts` → fragment swapped in).
// Prints one JSON line: {"events", "swaps", "p50_ms", "p95_ms", "max_ms"}.
import { launch, logIn, token } from '../lib.mjs';

const { browser, page } = await launch();
try {
  await logIn(page, token);
  await Promise.all([page.waitForURL(/\/start/), page.click('a.start[data-pipeline="bench"]')]);
  await Promise.all([page.waitForURL(/\/releases\/bench-\d+$/), page.click('button[value=start]')]);
  await page.waitForSelector('#release-body h1 .s-completed');
  const live = await page.evaluate(() => window.relflowLive);
  const lat = live.swaps.filter((s) => s.eventAt).map((s) => s.swappedAt - s.eventAt).sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : null);
  console.log(JSON.stringify({ events: live.events, swaps: lat.length, p50_ms: pct(50), p95_ms: pct(95), max_ms: lat.at(-1) ?? null }));
} finally {
  await browser.close();
}
