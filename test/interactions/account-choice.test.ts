import { expect } from '@jest/globals';
import { randomInt } from 'node:crypto';
import * as oidc from 'openid-client';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { callBankApi, startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import { mintAccessToken } from '../support/payment-tokens.ts';
import { authorizationRequest, discoverAs, exchangeCode } from '../support/third-party-app.ts';
import { openAccounts } from '../../src/bank-api/ledger.ts';
import { ibanFor } from '../../src/payments/iban.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';

/**
 * Which accounts an app may read, from the customer's side: the consent screen offers every
 * account, ticked; what the customer leaves ticked is all the bank API shows that app, through
 * the code, remembered consent on a new device and refresh alike; a forged tick is refused, and a
 * token that carries no choice sees nothing.
 */

let passbook: TestPassbook;
let bankApi: TestBankApi;
let app: RegisteredClient;
let config: oidc.Configuration;
let bank: oidc.Configuration;

function newIban(): string {
  return ibanFor('NL', `PBPC${String(randomInt(10 ** 9)).padStart(10, '0')}`);
}

interface Accounts {
  everyday: string;
  savings: string;
}

/** A customer with an Everyday and a Rainy day account, one transaction each. */
async function customerWithAccounts(): Promise<TestCustomer & { accounts: Accounts }> {
  const customer = await createTestCustomer(passbook.knex, 'Robin Chooser');
  const accounts = { everyday: newIban(), savings: newIban() };
  const transaction = (description: string) => ({
    bookedAt: new Date('2026-01-02T10:00:00Z'),
    description,
    category: 'groceries',
    amountMinor: -1_000,
  });
  await openAccounts(bankApi.knex, customer.id, [
    {
      name: 'Everyday',
      kind: 'current',
      iban: accounts.everyday,
      currency: 'EUR',
      openingBalanceMinor: 12_050,
      transactions: [transaction('Groceries')],
    },
    {
      name: 'Rainy day',
      kind: 'savings',
      iban: accounts.savings,
      currency: 'EUR',
      openingBalanceMinor: 50_000,
      transactions: [transaction('Umbrella')],
    },
  ]);
  return { ...customer, accounts };
}

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  app = await registerTestApp(passbook, { name: 'Budget Buddy' });
  config = await discoverAs(passbook, app);
  bank = await discoverAs(passbook, bankApi.resourceServer);
});

afterAll(async () => {
  await bankApi?.close();
  await passbook?.close();
});

const SCOPE = 'openid accounts:read transactions:read';

async function toConsentScreen(agent: CustomerAgent, url: URL, customer: TestCustomer): Promise<Page> {
  return agent.signIn(await agent.open(url.href), customer.username, customer.password);
}

function offered(page: Page) {
  return page.document.querySelectorAll('input[type="checkbox"][name="account"]').map((box) => ({
    iban: box.getAttribute('value'),
    ticked: box.hasAttribute('checked'),
    text: (box.parentNode?.text ?? '').replace(/\s+/g, ' ').trim(),
  }));
}

interface AccountJson {
  id: string;
  iban: string;
}

async function accountsSeen(token: string): Promise<AccountJson[]> {
  const answer = await callBankApi<{ accounts: AccountJson[] }>(bankApi.url, '/accounts', { token });
  expect(answer.status).toBe(200);
  return answer.body.accounts;
}

async function accountIds(customerId: string): Promise<Record<string, string>> {
  const rows = await bankApi
    .knex('bank.accounts')
    .where({ customer_id: customerId })
    .select<{ id: string; iban: string }[]>('id', 'iban');
  return Object.fromEntries(rows.map((row) => [row.iban, row.id]));
}

test('the screen offers every account, ticked, by name and grouped IBAN; unticked ones stay hidden from the app', async () => {
  const customer = await customerWithAccounts();
  const request = await authorizationRequest(config, SCOPE);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toConsentScreen(agent, request.url, customer);

  const grouped = (iban: string) => iban.replace(/(.{4})(?=.)/g, '$1 ');
  expect(offered(page)).toEqual([
    {
      iban: customer.accounts.everyday,
      ticked: true,
      text: `Everyday ${grouped(customer.accounts.everyday)}`,
    },
    {
      iban: customer.accounts.savings,
      ticked: true,
      text: `Rainy day ${grouped(customer.accounts.savings)}`,
    },
  ]);

  const callback = await agent.consent(page, 'allow', [customer.accounts.everyday]);
  const tokens = await exchangeCode(config, callback.url, request);
  const token = tokens.access_token;

  expect((await accountsSeen(token)).map((account) => account.iban)).toEqual([customer.accounts.everyday]);
  const ids = await accountIds(customer.id);
  const hidden = await callBankApi(bankApi.url, `/accounts/${ids[customer.accounts.savings]}/transactions`, {
    token,
  });
  expect(hidden.status).toBe(404);
  expect(hidden.body).toMatchObject({ error: 'not_found' });
  const shown = await callBankApi<{ transactions: { description: string }[] }>(
    bankApi.url,
    `/accounts/${ids[customer.accounts.everyday]}/transactions`,
    { token },
  );
  expect(shown.status).toBe(200);
  const all = await callBankApi<{ transactions: { description: string; account_id: string }[] }>(
    bankApi.url,
    '/transactions',
    { token },
  );
  expect(all.body.transactions.map((transaction) => transaction.description)).toEqual(['Groceries']);

  // The bank API reads the choice in introspection, as an authorization detail.
  const introspection = await oidc.tokenIntrospection(bank, token);
  expect(introspection.authorization_details).toEqual([
    { type: 'account_information', actions: ['read'], accounts: [{ iban: customer.accounts.everyday }] },
  ]);
});

test('an IBAN the bank does not offer this customer is refused, and so is ticking none', async () => {
  const customer = await customerWithAccounts();
  const stranger = await customerWithAccounts();
  const request = await authorizationRequest(config, SCOPE);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toConsentScreen(agent, request.url, customer);

  const forged = await agent.consent(page, 'allow', [customer.accounts.everyday, stranger.accounts.everyday]);
  expect(forged.status).toBe(400);
  expect(forged.url).not.toContain(TEST_REDIRECT_URI);
  expect(forged.document.querySelector('[role="alert"]')?.text).toMatch(/only among the accounts shown/);
  expect(offered(forged).map((account) => account.iban)).toEqual([
    customer.accounts.everyday,
    customer.accounts.savings,
  ]);

  const none = await agent.consent(forged, 'allow', []);
  expect(none.status).toBe(400);
  expect(none.document.querySelector('[role="alert"]')?.text).toMatch(/at least one account/);

  const callback = await agent.consent(none, 'allow', [customer.accounts.savings]);
  const tokens = await exchangeCode(config, callback.url, request);
  expect((await accountsSeen(tokens.access_token)).map((account) => account.iban)).toEqual([
    customer.accounts.savings,
  ]);
});

test('a new device’s remembered consent keeps the choice, and a new screen shows it ticked', async () => {
  const customer = await customerWithAccounts();
  const first = await authorizationRequest(config, 'openid accounts:read');
  const laptop = new CustomerAgent([TEST_REDIRECT_URI]);
  const screen = await toConsentScreen(laptop, first.url, customer);
  await exchangeCode(config, (await laptop.consent(screen, 'allow', [customer.accounts.savings])).url, first);

  // A phone signs in for the same scope: no screen, the same accounts.
  const again = await authorizationRequest(config, 'openid accounts:read');
  const phone = new CustomerAgent([TEST_REDIRECT_URI]);
  const remembered = await toConsentScreen(phone, again.url, customer);
  expect(remembered.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
  const phoneTokens = await exchangeCode(config, remembered.url, again);
  expect((await accountsSeen(phoneTokens.access_token)).map((account) => account.iban)).toEqual([
    customer.accounts.savings,
  ]);

  // The app asks for more: the screen shows what was chosen before, ticked, and only that.
  const more = await authorizationRequest(config, SCOPE);
  const tablet = new CustomerAgent([TEST_REDIRECT_URI]);
  const moreScreen = await toConsentScreen(tablet, more.url, customer);
  expect(offered(moreScreen).map(({ iban, ticked }) => ({ iban, ticked }))).toEqual([
    { iban: customer.accounts.everyday, ticked: false },
    { iban: customer.accounts.savings, ticked: true },
  ]);
  // Choosing again replaces the earlier choice rather than adding to it.
  const moreTokens = await exchangeCode(
    config,
    (await tablet.consent(moreScreen, 'allow', [customer.accounts.everyday])).url,
    more,
  );
  expect((await accountsSeen(moreTokens.access_token)).map((account) => account.iban)).toEqual([
    customer.accounts.everyday,
  ]);
});

test('a refreshed access token keeps the accounts chosen', async () => {
  const customer = await customerWithAccounts();
  const request = await authorizationRequest(config, `${SCOPE} offline_access`);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toConsentScreen(agent, request.url, customer);
  const tokens = await exchangeCode(
    config,
    (await agent.consent(page, 'allow', [customer.accounts.everyday])).url,
    request,
  );
  expect(tokens.refresh_token).toBeDefined();
  const refreshed = await oidc.refreshTokenGrant(config, String(tokens.refresh_token));
  expect((await accountsSeen(refreshed.access_token)).map((account) => account.iban)).toEqual([
    customer.accounts.everyday,
  ]);
});

test('a token that carries no account choice sees no account and no transaction (fails closed)', async () => {
  const customer = await customerWithAccounts();
  const ids = await accountIds(customer.id);
  const token = await mintAccessToken(passbook, {
    clientId: app.client_id,
    customerId: customer.id,
    scope: 'accounts:read transactions:read',
  });
  expect(await accountsSeen(token)).toEqual([]);
  expect((await callBankApi(bankApi.url, '/transactions', { token })).body).toEqual({ transactions: [] });
  const one = await callBankApi(bankApi.url, `/accounts/${ids[customer.accounts.everyday]}/transactions`, {
    token,
  });
  expect(one.status).toBe(404);
});

test('the account pages say, per app, which accounts it sees', async () => {
  const customer = await customerWithAccounts();
  const request = await authorizationRequest(config, SCOPE);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toConsentScreen(agent, request.url, customer);
  await exchangeCode(config, (await agent.consent(page, 'allow', [customer.accounts.savings])).url, request);

  const browser = new CustomerAgent();
  const signIn = await browser.open(`${passbook.issuer}/account`);
  const account = await browser.submit(signIn, '/account/sign-in', {
    username: customer.username,
    password: customer.password,
  });
  const row = account.document
    .querySelectorAll('li.row')
    .find((candidate) => candidate.querySelector('h3')?.text === 'Budget Buddy');
  const grouped = customer.accounts.savings.replace(/(.{4})(?=.)/g, '$1 ');
  expect(row?.querySelector('.shared-accounts')?.text).toBe(`Sees Rainy day (${grouped})`);
});
