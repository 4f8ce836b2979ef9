import { callBankApi, startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';

/** What an app reads with the customer's consent, and that it never sees another customer's data. */

interface AccountJson {
  id: string;
  name: string;
  type: string;
  iban: string;
  currency: string;
  balance: string;
}

interface TransactionJson {
  id: string;
  account_id: string;
  booked_at: string;
  description: string;
  category: string;
  amount: string;
  currency: string;
  balance_after: string;
}

let passbook: TestPassbook;
let bankApi: TestBankApi;
let dana: TestCustomer;
let sam: TestCustomer;
let danaToken: string;
let samAccountIds: string[];

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  [dana, sam] = await Promise.all([createTestCustomer(passbook.knex), createTestCustomer(passbook.knex)]);
  await seedDemoAccounts(bankApi.knex, dana.id);
  await seedDemoAccounts(bankApi.knex, sam.id);
  const app = await registerTestApp(passbook);
  const danaFlow = await completeFlow(passbook, app, dana, 'openid accounts:read transactions:read');
  danaToken = danaFlow.tokens.access_token;
  const samFlow = await completeFlow(passbook, app, sam, 'openid accounts:read');
  const samAccounts = await callBankApi<{ accounts: AccountJson[] }>(bankApi.url, '/accounts', {
    token: samFlow.tokens.access_token,
  });
  samAccountIds = samAccounts.body.accounts.map((account) => account.id);
});

afterAll(async () => {
  await bankApi.close();
  await passbook.close();
});

async function danaAccounts(): Promise<AccountJson[]> {
  const answer = await callBankApi<{ accounts: AccountJson[] }>(bankApi.url, '/accounts', {
    token: danaToken,
  });
  expect(answer.status).toBe(200);
  return answer.body.accounts;
}

test('GET /accounts lists the customer’s own accounts with balances, and nobody else’s', async () => {
  const accounts = await danaAccounts();
  expect(accounts.map((account) => account.name)).toEqual([
    'Everyday Account',
    'Rainy Day Savings',
    'Bills Account',
  ]);
  for (const account of accounts) {
    expect(account).toMatchObject({ currency: 'EUR' });
    expect(account.balance).toMatch(/^-?\d+\.\d{2}$/);
    expect(account.iban).toMatch(/^NL\d{2}PSBK\d{10}$/);
    expect(samAccountIds).not.toContain(account.id);
  }
  expect(samAccountIds).toHaveLength(3);
});

test('GET /transactions lists the customer’s transactions across accounts, newest first', async () => {
  const ownIds = new Set((await danaAccounts()).map((account) => account.id));
  const answer = await callBankApi<{ transactions: TransactionJson[] }>(
    bankApi.url,
    '/transactions?limit=200',
    {
      token: danaToken,
    },
  );
  expect(answer.status).toBe(200);
  const { transactions } = answer.body;
  expect(transactions.length).toBeGreaterThan(100);
  expect(transactions.every((transaction) => ownIds.has(transaction.account_id))).toBe(true);
  const times = transactions.map((transaction) => Date.parse(transaction.booked_at));
  expect([...times].sort((a, b) => b - a)).toEqual(times);
  expect(new Set(transactions.map((transaction) => transaction.account_id)).size).toBe(3);
});

test('GET /transactions takes a limit of 1 to 200 and nothing else', async () => {
  const one = await callBankApi<{ transactions: TransactionJson[] }>(bankApi.url, '/transactions?limit=1', {
    token: danaToken,
  });
  expect(one.body.transactions).toHaveLength(1);
  expect(
    (await callBankApi(bankApi.url, '/transactions', { token: danaToken })).body.transactions,
  ).toHaveLength(50);
  for (const bad of ['0', '201', 'ten', '-1', '1.5', '']) {
    const answer = await callBankApi(bankApi.url, `/transactions?limit=${bad}`, { token: danaToken });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_request');
  }
});

test('GET /accounts/:id/transactions shows one of the customer’s accounts, balances adding up', async () => {
  const [everyday] = await danaAccounts();
  const answer = await callBankApi<{ transactions: TransactionJson[] }>(
    bankApi.url,
    `/accounts/${everyday?.id}/transactions?limit=200`,
    { token: danaToken },
  );
  expect(answer.status).toBe(200);
  const { transactions } = answer.body;
  expect(transactions.length).toBeGreaterThan(50);
  expect(transactions.every((transaction) => transaction.account_id === everyday?.id)).toBe(true);
  expect(transactions[0]?.balance_after).toBe(everyday?.balance);
  // Each booking moves the balance by exactly its amount.
  for (let index = 0; index + 1 < transactions.length; index += 1) {
    const newer = transactions[index];
    const older = transactions[index + 1];
    const moved = Math.round((Number(newer?.balance_after) - Number(older?.balance_after)) * 100);
    expect(moved).toBe(Math.round(Number(newer?.amount) * 100));
  }
  expect(transactions.some((transaction) => transaction.description.includes('Salary'))).toBe(true);
});

test('another customer’s account is 404, exactly like an account that does not exist', async () => {
  const notOurs = await callBankApi(bankApi.url, `/accounts/${samAccountIds[0]}/transactions`, {
    token: danaToken,
  });
  const missing = await callBankApi(
    bankApi.url,
    '/accounts/00000000-0000-4000-8000-000000000000/transactions',
    {
      token: danaToken,
    },
  );
  const notAnId = await callBankApi(bankApi.url, '/accounts/not-a-uuid/transactions', { token: danaToken });
  for (const answer of [notOurs, missing, notAnId]) {
    expect(answer.status).toBe(404);
    expect(answer.body).toEqual({ error: 'not_found', error_description: 'No such account.' });
  }
});

test('a customer with no accounts sees empty lists', async () => {
  const newcomer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, newcomer, 'openid accounts:read transactions:read');
  expect((await callBankApi(bankApi.url, '/accounts', { token: tokens.access_token })).body).toEqual({
    accounts: [],
  });
  expect((await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token })).body).toEqual({
    transactions: [],
  });
});
