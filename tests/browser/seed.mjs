// The seed scenario in a browser: start petportal with version=2.2 from the start form and
// watch it fail live (attempts fail, the rollback runs) without a reload; restart the phase
// with version=2.3 from the form and see it complete; roll back one component with the picker.
import { scenario, token, check, screenshot, logIn, markDocument, assertSameDocument, waitForText } from './lib.mjs';

await scenario('seed', async (page) => {
  await logIn(page, token);
  await Promise.all([page.waitForURL(/\/start/), page.click('a.start[data-pipeline="petportal"]')]);
  await page.fill('input[name="var.version"]', '2.2');
  await Promise.all([page.waitForURL(/\/releases\/petportal-\d+$/), page.click('button[value=start]')]);
  await markDocument(page);
  const id = await page.getAttribute('#release', 'data-release');

  // Live: each failed attempt, then the rollback, appear without a reload.
  await waitForText(page, '#release-body', 'attempt 2 failed');
  const swapsAtAttempt2 = await page.evaluate(() => window.relflowLive.swaps.length);
  await waitForText(page, '#release-body', 'attempt 4 failed');
  await waitForText(page, '#release-body', 'rollback step: backend rollback of task deploy-petportal');
  await page.waitForSelector('#release-body h1 .s-failed');
  await assertSameDocument(page, 'the release failed');
  const swaps = await page.evaluate(() => window.relflowLive.swaps.length);
  check(swapsAtAttempt2 >= 1 && swaps > swapsAtAttempt2,
    `the page did not update as events arrived (swaps: ${swapsAtAttempt2} then ${swaps})`);
  const task = await page.innerText('tr.task[id="task-deploy-deploy-petportal"]');
  check(task.includes('rolled back'), `deploy-petportal is not shown rolled back: ${task}`);
  await screenshot(page, 'seed-failed-live');

  // The live log pane shows the health check's attempts.
  await page.click('tr.detail a.log-link:has-text("attempt 4")');
  await waitForText(page, '#log-text', '=== attempt 4 ===');

  // Fix forward from the form: the version field is prefilled with the current value.
  await page.click('#restart-deploy summary');
  const prefilled = await page.inputValue('#restart-deploy input[name="var.version"]');
  check(prefilled === '2.2', `the restart form is not prefilled with version 2.2: ${prefilled}`);
  await page.fill('#restart-deploy input[name="var.version"]', '2.3');
  await page.fill('#restart-deploy input[name=comment]', 'fix forward to 2.3');
  await Promise.all([page.waitForURL(new RegExp(`/releases/${id}$`)), page.click('#restart-deploy button[type=submit]')]);
  await page.waitForSelector('#release-body h1 .s-completed');
  await waitForText(page, '#release-body', 'ops ran relflow restart-phase');
  await waitForText(page, '#release-body', 'fix forward to 2.3');
  await screenshot(page, 'seed-restarted-completed');

  // Roll back one component: the picker lists the deployment's components.
  const picker = page.locator('#phase-deploy\\#2 details.rollback');
  await picker.locator('summary').click();
  const components = await picker.locator('input[name=components]').evaluateAll((els) => els.map((e) => e.value));
  check(components.includes('web') && components.includes('api'), `the picker lists ${components}`);
  await picker.locator('input[name=components][value=web]').check();
  await picker.locator('input[name=comment]').fill('web only');
  await picker.locator('button[type=submit]').click();
  await waitForText(page, '#release-body', 'rollback job 1 (components web) completed');
  await waitForText(page, '#release-body', 'with web removed');
  await screenshot(page, 'seed-component-rolled-back');
});
