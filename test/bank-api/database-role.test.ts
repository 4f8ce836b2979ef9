import { expect } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import {
  BankApiRoleError,
  bankApiDatabaseUrl,
  confinementProblems,
  provisionBankApiRole,
} from '../../src/bank-api/database-role.ts';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { createKnex } from '../../src/db/knex.ts';
import { callBankApi, startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import { runRoleName } from '../support/database.ts';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  testDatabaseUrl,
  type TestPassbook,
} from '../support/passbook.ts';
import { createScratchDatabase } from '../support/scratch-database.ts';
import { completeFlow } from '../support/third-party-app.ts';
import { mintPaymentToken, paymentBody, paymentDetail } from '../support/payment-tokens.ts';

/**
 * The bank API is a separate service with a database role of its own: with its credentials,
 * customers' password hashes, the signing keys, the apps' secrets and every token stay out of reach.
 */

let passbook: TestPassbook;
let bankApi: TestBankApi;

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
});

afterAll(async () => {
  await bankApi.close();
  await passbook.close();
});

const PERMISSION_DENIED = { code: '42501', message: expect.stringMatching(/permission denied/) };

test.each(['customers', 'signing_keys', 'clients', 'oidc_models', 'cookie_keys', 'audit_events'])(
  "with the bank API's credentials, reading Passbook's %s is refused",
  async (table) => {
    await expect(bankApi.knex.raw(`SELECT * FROM public.${table} LIMIT 1`)).rejects.toMatchObject(
      PERMISSION_DENIED,
    );
  },
);

test("with the bank API's credentials, nothing can be planted in Passbook's schema either", async () => {
  await expect(bankApi.knex.raw('CREATE TABLE public.planted (id int)')).rejects.toMatchObject(
    PERMISSION_DENIED,
  );
  const { rows } = await bankApi.knex.raw<{ rows: { role: string; superuser: boolean }[] }>(
    'SELECT current_user AS role, rolsuper AS superuser FROM pg_roles WHERE rolname = current_user',
  );
  expect(rows).toEqual([{ role: runRoleName(testDatabaseUrl(), 'bank_api'), superuser: false }]);
});

test('on its own role the bank API still serves accounts, transactions and payments', async () => {
  const customer = await createTestCustomer(passbook.knex);
  // The ledger knows the customer only by the `sub` that introspection will name.
  await seedDemoAccounts(bankApi.knex, customer.id);
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, customer, 'openid accounts:read transactions:read');
  const token = tokens.access_token;
  const accounts = await callBankApi<{ accounts: { iban: string }[] }>(bankApi.url, '/accounts', { token });
  expect(accounts.status).toBe(200);
  expect(accounts.body.accounts).toHaveLength(3);
  const transactions = await callBankApi<{ transactions: unknown[] }>(bankApi.url, '/transactions?limit=5', {
    token,
  });
  expect(transactions.status).toBe(200);
  expect(transactions.body.transactions).toHaveLength(5);
  const detail = paymentDetail(accounts.body.accounts[0]?.iban ?? '');
  const payment = await callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    token: await mintPaymentToken(passbook, detail, { clientId: app.client_id, customerId: customer.id }),
    json: paymentBody(detail),
    headers: { 'idempotency-key': 'own-role' },
  });
  expect(payment.status).toBe(201);
});

test('both services answer /healthz the same way, from the shared kit', async () => {
  for (const url of [passbook.issuer, bankApi.url]) {
    const answer = await fetch(`${url}/healthz`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(await answer.json()).toMatchObject({ status: 'ok', checks: { database: 'ok', migrations: 'ok' } });
  }
});

test("a bank API given Passbook's own role refuses to start", async () => {
  await expect(startTestBankApi(passbook, { BANK_API_DATABASE_URL: testDatabaseUrl() })).rejects.toThrow(
    /must reach only the schema "bank", but it has SUPERUSER/,
  );
});

test('provisioning is idempotent, and refuses a role that could reach what is not the bank’s', async () => {
  const scratch = await createScratchDatabase();
  const admin = createKnex(scratch.url, 2);
  const name = runRoleName(testDatabaseUrl(), 'scratch_bank_api');
  try {
    await provisionBankApiRole(admin, { name, password: randomBytes(24).toString('base64url') });
    const password = randomBytes(24).toString('base64url');
    await provisionBankApiRole(admin, { name, password });
    expect(await confinementProblems(admin, name)).toEqual([]);
    const asRole = createKnex(bankApiDatabaseUrl(scratch.url, { name, password }), 1);
    try {
      await asRole.raw('CREATE TABLE bank.owned_by_the_bank (id int)');
    } finally {
      await asRole.destroy();
    }

    await admin.raw('GRANT SELECT ON public.customers TO PUBLIC');
    await admin.raw(`GRANT pg_read_all_data TO ${name}`);
    expect(await confinementProblems(admin, name)).toEqual(
      expect.arrayContaining(['it is a member of "pg_read_all_data"', 'it may use public.customers']),
    );
    await expect(provisionBankApiRole(admin, { name, password })).rejects.toThrow(BankApiRoleError);
    await admin.raw(`REVOKE pg_read_all_data FROM ${name}`);
  } finally {
    await admin.destroy();
    await scratch.drop();
  }
});
