// Approve a manual task with a comment: the prompt shows, the approval is recorded with the
// operator's name and comment, the release completes; a stale form then gets the refusal
// shown on the page. A release list open in another tab follows along without a reload.
import { scenario, token, check, screenshot, logIn, waitForText, markDocument, assertSameDocument } from './lib.mjs';

await scenario('approve', async (page) => {
  await logIn(page, token);
  // A second tab on the release list: it shows the new release and its end without a reload.
  const list = await page.context().newPage();
  await list.goto(page.url());
  await markDocument(list);
  await Promise.all([page.waitForURL(/\/start/), page.click('a.start[data-pipeline="gate"]')]);
  await Promise.all([page.waitForURL(/\/releases\/gate-\d+$/), page.click('button[value=start]')]);
  await waitForText(page, '#release-body', 'waiting for approval: Promote 1.0?');
  await page.waitForSelector('#release-body h1 .s-paused');
  await screenshot(page, 'approve-waiting');

  // Keep a copy of the form to post it again once it no longer applies.
  const staleForm = await page.evaluate(() => document.querySelector('form.approval').outerHTML);
  await page.fill('form.approval input[name=comment]', 'looks good');
  await Promise.all([page.waitForURL(/\/releases\/gate-\d+$/), page.click('form.approval button[value=approve]')]);
  await page.waitForSelector('#release-body h1 .s-completed');
  await waitForText(page, '#release-body', 'ops ran relflow approve: "looks good"');
  await screenshot(page, 'approve-completed');
  await list.waitForSelector('tr[data-release="gate-1"][data-status="completed"]');
  await assertSameDocument(list, 'the release list followed gate-1');
  await screenshot(list, 'approve-release-list-live');

  // The stale form: the server refuses (409) and the page says why.
  await page.evaluate((html) => {
    const holder = document.createElement('div');
    holder.innerHTML = html;
    document.body.appendChild(holder);
  }, staleForm);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST'),
    page.locator('body > div form.approval button[value=approve]').click(),
  ]);
  check(response.status() === 409, `a stale approval got HTTP ${response.status()}, not 409`);
  const notice = await page.innerText('#notice');
  check(notice.length > 0, 'the refusal shows no message');
  console.log(`refusal shown: ${notice}`);
  await screenshot(page, 'approve-refused');
});
