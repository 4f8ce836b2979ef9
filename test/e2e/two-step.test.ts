import type { Browser, Page } from 'playwright-core';
import { launchChromium, screenshot } from '../support/browser.ts';
import {
  createTestCustomer,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { codeAtStep } from '../support/two-step.ts';
import { secretFromBase32 } from '../../src/customers/totp.ts';

/**
 * Two-step verification as a customer clicks through it in a real browser: turned on from the
 * Security section with the key typed from the page, the recovery codes shown once, then the code
 * page at the next sign-in. Screenshots of each go to artifacts/screenshots/.
 */

let passbook: TestPassbook;
let customer: TestCustomer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  passbook = await startTestPassbook();
  customer = await createTestCustomer(passbook.knex, 'Sam Secure');
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  context.setDefaultTimeout(10_000);
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await passbook?.close();
});

let lastStep = 0;
/** The authenticator app's code for a time-step not used yet. */
function codeFor(secret: Buffer): string {
  lastStep = Math.max(Math.floor(Date.now() / 30_000), lastStep + 1);
  return codeAtStep(secret, lastStep);
}

async function signInWithPassword(): Promise<void> {
  await page.goto(`${passbook.issuer}/account/sign-in`);
  await page.getByLabel('Username').fill(customer.username);
  await page.getByLabel('Password').fill(customer.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

let secret: Buffer;

test('the customer turns on two-step verification from the Security section', async () => {
  await signInWithPassword();
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  await page.getByRole('link', { name: 'Security' }).first().click();
  await page.getByRole('heading', { name: 'Security' }).first().waitFor();
  await screenshot(page, 'security-1-section');

  await page.getByRole('button', { name: 'Turn on two-step verification' }).click();
  const key = (await page.locator('.secret-key code').textContent()) ?? '';
  secret = secretFromBase32(key.replace(/\s+/g, ''));
  await screenshot(page, 'security-2-turn-on');
  await page.getByLabel('6-digit code').fill(codeFor(secret));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.getByText('k').first().waitFor();
  expect(await page.content()).toMatch(/[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{2}/);
  await screenshot(page, 'security-3-recovery-codes');
});

test('the next sign-in asks for the code on its own page after the password', async () => {
  await page.goto(`${passbook.issuer}/account`);
  await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
  await page.getByRole('heading', { name: 'Signed out' }).waitFor();

  await signInWithPassword();
  await page.getByRole('heading', { name: 'Enter your code' }).waitFor();
  expect(await page.getByLabel('Password').count()).toBe(0);
  await screenshot(page, 'two-step-code-page');
  await page.getByLabel('The 6-digit code from your authenticator app').fill(codeFor(secret));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  expect(await page.locator('.activity').textContent()).toContain('Two-step verification turned on');
});
