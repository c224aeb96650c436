// Log in: the UI sends a stranger to the login page, refuses a wrong token, and a valid
// token opens the release list with the token's name in the header.
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
});
