// A viewer reads everything and sees no action button: no form on the release list or on a
// failed release's page (where an operator would see retry, skip, restart-phase and abort).
import { scenario, url, viewerToken, check, screenshot, logIn } from './lib.mjs';

await scenario('viewer', async (page) => {
  await logIn(page, viewerToken);
  check((await page.locator('form.action').count()) === 0, 'the viewer sees a form on the release list');
  await page.click('a:has-text("petportal-1")');
  await page.waitForSelector('#release-body h1 .s-failed');
  const task = await page.innerText('#release-body');
  check(task.includes('attempt 4 failed'), 'the viewer does not see the attempts');
  const forms = await page.locator('form').count();
  const buttons = await page.locator('#release-body button').count();
  check(forms === 0 && buttons === 0, `the viewer sees ${forms} forms and ${buttons} buttons`);
  const who = await page.innerText('header .who');
  check(who.includes('viewer'), `the header does not say viewer: ${who}`);
  await screenshot(page, 'viewer-release-page');
  // Posting the form by hand does not help a viewer: 403 with the reason.
  const csrf = 'whatever';
  const post = await page.request.post(`${url}/releases/petportal-1/actions/retry`,
    { form: { csrf, task: 'deploy-petportal' }, maxRedirects: 0 });
  check(post.status() === 403, `a viewer's retry got HTTP ${post.status()}, not 403`);
  check((await post.text()).includes('viewer'), 'the 403 page does not say why');
  console.log(`viewer on ${url}: no action buttons`);
});
