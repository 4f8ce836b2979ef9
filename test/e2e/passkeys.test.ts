import type * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, screenshot } from '../support/browser.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, discoverAs, exchangeCode } from '../support/third-party-app.ts';
import {
  addVirtualAuthenticator,
  captureJsonPost,
  cookieHeader,
  startLocalhostPassbook,
} from '../support/virtual-authenticator.ts';

/**
 * Passkeys in a real browser, with Chromium's virtual authenticator as the customer's laptop:
 * added from the account pages, then used instead of a password at both doors, an app's sign-in
 * screen included; removed, and useless afterwards. A second Passbook on another origin (same
 * database, same keys) makes the ceremonies a phishing site would relay.
 */

let passbook: TestPassbook;
let elsewhere: TestPassbook;
let customer: TestCustomer;
let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  [passbook, elsewhere] = await Promise.all([startLocalhostPassbook(), startLocalhostPassbook()]);
  customer = await createTestCustomer(passbook.knex, 'Pat Passkey');
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  // Playwright's own waits end before the test's, so a failure names the step that failed.
  context.setDefaultTimeout(10_000);
  page = await context.newPage();
  await addVirtualAuthenticator(context, page);
});

afterAll(async () => {
  await browser?.close();
  await elsewhere?.close();
  await passbook?.close();
});

const passkeysOf = (customerId: string) =>
  passbook
    .knex('customer_passkeys')
    .where({ customer_id: customerId })
    .select('name', 'device_type', 'counter');

async function eventTypes(): Promise<string[]> {
  const rows = await passbook.knex('audit_events').where({ customer_id: customer.id }).select('type');
  return rows.map((row: { type: string }) => row.type);
}

/** Replays, from outside the browser but with its cookies, a JSON call the page made. */
async function replay(url: string, body: string, csrf: string | null): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      cookie: await cookieHeader(context, url),
      ...(csrf ? { 'x-csrf-token': csrf } : {}),
    },
    body,
  });
}

async function signInWithPassword(): Promise<void> {
  await page.goto(`${passbook.issuer}/account/sign-in`);
  await page.getByLabel('Username').fill(customer.username);
  await page.getByLabel('Password').fill(customer.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
}

async function signOut(): Promise<void> {
  await page.goto(`${passbook.issuer}/account`);
  await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
  await page.getByRole('heading', { name: 'Signed out' }).waitFor();
}

async function pressPasskeySignIn(origin: string): Promise<string> {
  await page.goto(`${origin}/account/sign-in`);
  const button = page.getByRole('button', { name: 'Sign in with a passkey' });
  await button.waitFor();
  const csrf = await page.locator('[data-passkey-sign-in]').getAttribute('data-csrf');
  await button.click();
  return csrf ?? '';
}

test('the sign-in page works without JavaScript and offers no passkey button there', async () => {
  const plain = await browser.newContext({ javaScriptEnabled: false });
  const noScript = await plain.newPage();
  await noScript.goto(`${passbook.issuer}/account/sign-in`);
  expect(await noScript.getByRole('button', { name: 'Sign in with a passkey' }).isVisible()).toBe(false);
  await noScript.getByLabel('Username').fill(customer.username);
  await noScript.getByLabel('Password').fill(customer.password);
  await noScript.getByRole('button', { name: 'Sign in', exact: true }).click();
  await noScript.getByRole('heading', { name: 'Your account' }).waitFor();
  expect(await noScript.getByRole('button', { name: 'Add a passkey' }).isVisible()).toBe(false);
  await plain.close();
});

test('a registration made on another origin, or sent without the CSRF token, adds nothing', async () => {
  await signInWithPassword();
  // The session cookie is host-only, and localhost's cookies are shared by every port.
  await page.goto(`${elsewhere.issuer}/account/security`);
  const capture = await captureJsonPost(page, `${elsewhere.issuer}/account/security/passkeys`, {
    abort: true,
  });
  await page.getByLabel('Name for the new passkey').fill('Phished');
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  const body = await capture();
  const csrf = await page.locator('[data-passkey-register]').getAttribute('data-csrf');

  const withoutToken = await replay(`${passbook.issuer}/account/security/passkeys`, body, null);
  expect(withoutToken.status).toBe(403);
  const relayed = await replay(`${passbook.issuer}/account/security/passkeys`, body, csrf);
  expect(relayed.status).toBe(400);
  expect(await passkeysOf(customer.id)).toEqual([]);
});

test('a customer adds a named passkey and sees it listed', async () => {
  await page.goto(`${passbook.issuer}/account/security`);
  await page.getByLabel('Name for the new passkey').fill('My laptop');
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await page.locator('.passkey-list').getByRole('heading', { name: 'My laptop' }).waitFor();
  expect(await page.locator('.passkey-list li').count()).toBe(1);
  expect(await page.locator('.passkey-list li').textContent()).toContain('last used Never');
  await screenshot(page, 'passkeys-1-list');
  expect(await passkeysOf(customer.id)).toEqual([
    expect.objectContaining({ name: 'My laptop', device_type: 'singleDevice' }),
  ]);
  expect(await eventTypes()).toContain('passkey_added');
  await signOut();
});

test('signing in with the passkey needs no password; its assertion cannot be replayed', async () => {
  const capture = await captureJsonPost(page, `${passbook.issuer}/account/sign-in/passkey`);
  const csrf = await pressPasskeySignIn(passbook.issuer);
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  await page.goto(`${passbook.issuer}/account/security`);
  expect(await page.locator('.passkey-list li').textContent()).not.toContain('last used Never');

  const session = await passbook
    .knex('oidc_models')
    .where({ kind: 'Session', customer_id: customer.id })
    .orderBy('created_at', 'desc')
    .first<{ payload: { amr?: string[] } } | undefined>('payload');
  expect(session?.payload.amr).toEqual(['hwk', 'mfa']);

  const replayed = await replay(`${passbook.issuer}/account/sign-in/passkey`, await capture(), csrf);
  expect(replayed.status).toBe(401);
  await signOut();
});

test('an assertion made for another origin is refused, and so is a counter that went backwards', async () => {
  const capture = await captureJsonPost(page, `${elsewhere.issuer}/account/sign-in/passkey`, { abort: true });
  const csrf = await pressPasskeySignIn(elsewhere.issuer);
  const relayed = await replay(`${passbook.issuer}/account/sign-in/passkey`, await capture(), csrf);
  expect(relayed.status).toBe(401);

  // A stored counter ahead of the authenticator's means a cloned key: the real one is refused.
  const passkeys = passbook.knex('customer_passkeys').where({ customer_id: customer.id });
  const [{ counter }] = (await passkeys.clone().select('counter')) as [{ counter: string }];
  await passkeys.clone().update({ counter: 1_000_000 });
  await pressPasskeySignIn(passbook.issuer);
  await page.getByText('That passkey could not sign you in').waitFor();
  await passkeys.clone().update({ counter });
});

test("on an app's sign-in screen, the passkey signs in and the ID token says two factors", async () => {
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const request = await authorizationRequest(config, 'openid profile');
  let callback = '';
  await page.route(`${TEST_REDIRECT_URI}**`, async (route) => {
    callback = route.request().url();
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the app' });
  });

  await page.goto(request.url.href);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
  await screenshot(page, 'passkeys-2-app-sign-in');
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.getByText('back at the app').waitFor();

  const tokens = await exchangeCode(config, callback, request);
  const claims = tokens.claims() as oidc.IDToken;
  expect(claims.sub).toBe(customer.id);
  expect(claims.amr).toEqual(expect.arrayContaining(['hwk', 'mfa']));
  // acr ('urn:passbook:acr:mfa', set with the login) reaches ID tokens once discovery publishes acr values.
});

test('a removed passkey signs nobody in', async () => {
  // Still signed in from the app's sign-in: the bank session is the same one.
  await page.goto(`${passbook.issuer}/account/security`);
  await page.getByRole('button', { name: 'Remove My laptop' }).click();
  await page.getByText('You have no passkeys yet.').waitFor();
  expect(await passkeysOf(customer.id)).toEqual([]);
  expect(await eventTypes()).toContain('passkey_removed');
  await signOut();

  await pressPasskeySignIn(passbook.issuer);
  await page.getByText('That passkey could not sign you in').waitFor();
  expect(page.url()).toBe(`${passbook.issuer}/account/sign-in`);
});
