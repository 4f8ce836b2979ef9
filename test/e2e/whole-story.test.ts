import type { Browser, BrowserContext, Page } from 'playwright-core';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { callBankApi, startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import { launchChromium, screenshot } from '../support/browser.ts';
import { connectedTokens, startTestBudgetBuddy, type TestBudgetBuddy } from '../support/budget-buddy.ts';
import {
  basicAuthorization,
  createTestCustomer,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';

/**
 * The seed's story in a real browser: a customer connects Budget Buddy to the bank, sees their
 * transactions there, and disconnects; the bank API enforces every step.
 */

let passbook: TestPassbook;
let bankApi: TestBankApi;
let budgetBuddy: TestBudgetBuddy;
let customer: TestCustomer;
let browser: Browser;
let context: BrowserContext;

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  budgetBuddy = await startTestBudgetBuddy(passbook, bankApi.url);
  customer = await createTestCustomer(passbook.knex, 'Dana Demo');
  await seedDemoAccounts(bankApi.knex, customer.id);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await budgetBuddy?.close();
  await bankApi?.close();
  await passbook?.close();
});

beforeEach(async () => {
  context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
});

afterEach(async () => {
  await context.close();
});

/** From Budget Buddy's welcome page to its dashboard, through the bank's sign-in and consent. */
async function connect(page: Page, options: { screenshots?: boolean } = {}): Promise<string[]> {
  await page.goto(budgetBuddy.url);
  await page.getByRole('button', { name: 'Connect your bank' }).click();

  await page.waitForURL(`${passbook.issuer}/interaction/**`);
  await page.getByLabel('Username').waitFor();
  await page.getByLabel('Username').fill(customer.username);
  await page.getByLabel('Password').fill(customer.password);
  if (options.screenshots) await screenshot(page, '1-bank-sign-in');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();

  await page.getByRole('button', { name: 'Allow' }).waitFor();
  const permissions = await page.locator('.permissions li').allTextContents();
  if (options.screenshots) await screenshot(page, '2-bank-consent');
  await page.getByRole('button', { name: 'Allow' }).click();

  await page.waitForURL(`${budgetBuddy.url}/`);
  await page.locator('table.transactions tbody tr').first().waitFor();
  return permissions.map((text) => text.trim());
}

test('connect, see transactions, be refused payments, disconnect: the old token is dead', async () => {
  const page = await context.newPage();
  const permissions = await connect(page, { screenshots: true });

  // The consent screen says what Budget Buddy asked for, in the bank's words, and no payments.
  expect(permissions).toContain('Read your transactions');
  expect(permissions).toContain('See your account names and balances');
  expect(permissions.some((line) => /pay/i.test(line))).toBe(false);

  // Back in the app: the customer's own transactions, from the bank API.
  expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Hi, Dana');
  const rows = await page.locator('table.transactions tbody tr').count();
  expect(rows).toBeGreaterThan(10);
  expect(await page.locator('.accounts li').count()).toBe(3);
  await screenshot(page, '3-budget-buddy-transactions');

  // With the app's own token, the bank API still refuses a payment: it was never granted.
  const { accessToken, refreshToken } = connectedTokens(budgetBuddy);
  expect((await callBankApi(bankApi.url, '/transactions', { token: accessToken })).status).toBe(200);
  const [firstAccount] = await bankApi
    .knex('bank.accounts')
    .where({ customer_id: customer.id })
    .select<{ iban: string }[]>('iban');
  const payment = await callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    token: accessToken,
    headers: { 'idempotency-key': 'mallory' },
    json: {
      instructedAmount: { currency: 'EUR', amount: '10.00' },
      creditorName: 'Mallory',
      creditorAccount: { iban: 'NL91ABNA0417164300' },
      debtorAccount: { iban: firstAccount?.iban },
    },
  });
  expect(payment.status).toBe(403);
  expect(payment.body).toMatchObject({ error: 'payment_not_approved' });
  const booked = await bankApi
    .knex('bank.payments as p')
    .join('bank.accounts as a', 'a.id', 'p.account_id')
    .where('a.customer_id', customer.id)
    .count<{ count: string }[]>();
  expect(booked).toEqual([{ count: '0' }]);

  // Disconnect: the app revokes its refresh token at the bank and forgets its tokens.
  await page.getByRole('button', { name: 'Disconnect' }).click();
  await page.getByRole('button', { name: 'Connect your bank' }).waitFor();
  expect(await page.locator('.notice').textContent()).toContain('You disconnected your bank');
  expect(budgetBuddy.sessions.list().some((session) => session.connection)).toBe(false);

  // Revoking the refresh token ended the whole grant: the access token issued with it is dead too.
  const afterwards = await callBankApi(bankApi.url, '/transactions', { token: accessToken });
  expect(afterwards.status).toBe(401);
  expect(afterwards.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
  const refresh = await fetch(`${passbook.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: basicAuthorization(budgetBuddy.client),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: String(refreshToken) }),
  });
  expect(refresh.status).toBe(400);
  expect(((await refresh.json()) as { error: string }).error).toBe('invalid_grant');
});

test('an expired access token is refreshed without the customer noticing', async () => {
  const page = await context.newPage();
  await connect(page);
  const before = connectedTokens(budgetBuddy);

  // The bank expires the token (its storage's own expiry); Budget Buddy still thinks it is good.
  await passbook
    .knex('oidc_models')
    .where({ kind: 'AccessToken', id: before.accessToken })
    .update({ expires_at: new Date(Date.now() - 1000) });
  await page.reload();
  await page.locator('table.transactions tbody tr').first().waitFor();
  const afterRefusal = connectedTokens(budgetBuddy);
  expect(afterRefusal.accessToken).not.toBe(before.accessToken);
  expect(afterRefusal.refreshToken).not.toBe(before.refreshToken);

  // And one that Budget Buddy knows has expired is refreshed before it is even used.
  for (const session of budgetBuddy.sessions.list()) {
    if (session.connection) session.connection.expiresAt = Date.now() - 1000;
  }
  await page.reload();
  await page.locator('table.transactions tbody tr').first().waitFor();
  expect(connectedTokens(budgetBuddy).accessToken).not.toBe(afterRefusal.accessToken);

  await page.getByRole('button', { name: 'Disconnect' }).click();
  await page.getByRole('button', { name: 'Connect your bank' }).waitFor();
});

test('revoking the app on the bank’s account pages shows "disconnected, connect again" in the app', async () => {
  const page = await context.newPage();
  await connect(page);
  const { accessToken } = connectedTokens(budgetBuddy);

  // The customer, still signed in at the bank, revokes Budget Buddy on the bank's own pages.
  await page.goto(`${passbook.issuer}/account`);
  const revoke = page.getByRole('button', { name: 'Revoke Budget Buddy' });
  await revoke.waitFor();
  await screenshot(page, '4-bank-account-pages');
  await revoke.click();
  await page.waitForURL(`${passbook.issuer}/account**`);
  await revoke.waitFor({ state: 'detached' });
  expect((await callBankApi(bankApi.url, '/transactions', { token: accessToken })).status).toBe(401);

  await page.goto(budgetBuddy.url);
  await page.getByRole('button', { name: 'Connect your bank' }).waitFor();
  expect(await page.locator('.notice').textContent()).toContain('Your bank connection has ended');
  expect(budgetBuddy.sessions.list().some((session) => session.connection)).toBe(false);
});
