// Log in: the UI sends a stranger to the login page, refuses a wrong token, and a valid
// token opens the release list with the token's name in the header; a form without the
// CSRF token is refused.
import { scenario, url, token, check, screenshot, logIn } from './lib.mjs';

await scenario('login', async (page) => {
  await page.goto(`${url}/`);
  check(page.url().startsWith(`${url}/login`), `a stranger was not sent to the login page: ${page.url()}`);
  await page.fill('input[name=token]', 'not-a-token');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=not valid');
  await logIn(page, token);
  await page.waitForSelector('h1:has-text("Releases")');
  const who = await page.innerText('header .who');
  check(who.includes('ops') && who.includes('operator'), `the header does not name the operator: ${who}`);
  await screenshot(page, 'login-release-list');
  // A form posted without the session's CSRF token is refused (403), whoever is logged in.
  const forged = await page.request.post(`${url}/start`,
    { form: { pipeline: 'hello.yaml' }, maxRedirects: 0 });
  check(forged.status() === 403, `a form without the CSRF token got HTTP ${forged.status()}, not 403`);
  check((await forged.text()).includes('CSRF'), 'the 403 page does not name the CSRF token');
  await page.goto(`${url}/`);
  check((await page.locator('#release-rows tr[data-release]').count()) === 0, 'the forged form started a release');
});
