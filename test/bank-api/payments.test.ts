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
import { createTwoStepCustomer } from '../support/two-step.ts';

/** POST /payments: what a valid payment changes, and that a refused one changes nothing. */

interface AccountJson {
  id: string;
  balance: string;
}

let passbook: TestPassbook;
let bankApi: TestBankApi;
let customer: TestCustomer;
let token: string;
let appClientId: string;

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  customer = await createTwoStepCustomer(passbook);
  await seedDemoAccounts(bankApi.knex, customer.id);
  const app = await registerTestApp(passbook);
  appClientId = app.client_id;
  const flow = await completeFlow(
    passbook,
    app,
    customer,
    'openid accounts:read transactions:read payments:write',
  );
  token = flow.tokens.access_token;
});

afterAll(async () => {
  await bankApi.close();
  await passbook.close();
});

async function accounts(): Promise<AccountJson[]> {
  return (await callBankApi<{ accounts: AccountJson[] }>(bankApi.url, '/accounts', { token })).body.accounts;
}

async function everyday(): Promise<AccountJson> {
  const [account] = await accounts();
  if (!account) throw new Error('the customer has no accounts');
  return account;
}

/** Everything a payment could write: if a refusal changes any of these, something was half-written. */
async function ledgerSnapshot() {
  const count = async (table: string) =>
    Number((await bankApi.knex(table).count<{ count: string }[]>())[0]?.count);
  return {
    balances: (await accounts()).map((account) => account.balance),
    transactions: await count('bank.transactions'),
    payments: await count('bank.payments'),
  };
}

function pay(body: unknown, options: { contentType?: string } = {}) {
  return callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    token,
    json: body,
    headers: options.contentType ? { 'content-type': options.contentType } : {},
  });
}

const PAYEE = { payee_name: 'Jo Bloggs', payee_iban: 'NL91 ABNA 0417 1643 00' };

test('a valid payment is booked: 201, the balance drops and the transaction is listed first', async () => {
  const before = await everyday();
  const answer = await pay({
    from_account_id: before.id,
    amount: '12.5',
    currency: 'EUR',
    ...PAYEE,
    reference: 'Concert tickets',
  });
  expect(answer.status).toBe(201);
  expect(answer.body.payment).toMatchObject({
    status: 'booked',
    from_account_id: before.id,
    amount: '12.50',
    currency: 'EUR',
    payee_name: 'Jo Bloggs',
    payee_iban: 'NL91ABNA0417164300',
    reference: 'Concert tickets',
  });

  const after = await everyday();
  expect(Math.round(Number(after.balance) * 100)).toBe(Math.round(Number(before.balance) * 100) - 1250);
  const latest = await callBankApi<{ transactions: { id: string; amount: string; description: string }[] }>(
    bankApi.url,
    `/accounts/${before.id}/transactions?limit=1`,
    { token },
  );
  expect(latest.body.transactions[0]).toMatchObject({
    amount: '-12.50',
    description: 'Jo Bloggs · Concert tickets',
  });
  const stored = await bankApi
    .knex('bank.payments')
    .where({ id: (answer.body.payment as { id: string }).id })
    .first<{ client_id: string } | undefined>('client_id');
  expect(stored?.client_id).toBe(appClientId);
});

test.each([
  ['not an object', ['a', 'b']],
  ['null', null],
  ['an unknown member', { extra: true }],
  ['a missing amount', { amount: undefined }],
  ['a numeric amount', { amount: 12.5 }],
  ['a negative amount', { amount: '-5.00' }],
  ['a zero amount', { amount: '0.00' }],
  ['three decimals', { amount: '1.005' }],
  ['an amount over the limit', { amount: '10000.01' }],
  ['a lower-case currency', { currency: 'eur' }],
  ['an IBAN with a wrong check digit', { payee_iban: 'NL92ABNA0417164300' }],
  ['an empty payee name', { payee_name: '   ' }],
  ['a payee name with a line break', { payee_name: 'Jo\nBloggs' }],
  ['a reference that is too long', { reference: 'x'.repeat(141) }],
  ['a from_account_id that is not a uuid', { from_account_id: "1' OR '1'='1" }],
])('a body with %s is 400 invalid_request and writes nothing', async (_case, change) => {
  const account = await everyday();
  const valid = { from_account_id: account.id, amount: '5.00', currency: 'EUR', ...PAYEE };
  const body = Array.isArray(change) || change === null ? change : { ...valid, ...change };
  const before = await ledgerSnapshot();
  const answer = await pay(body);
  expect(answer.status).toBe(400);
  expect(answer.body.error).toBe('invalid_request');
  expect(typeof answer.body.error_description).toBe('string');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('malformed JSON and a non-JSON body are refused with a clear JSON error', async () => {
  const before = await ledgerSnapshot();
  const broken = await callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    token,
    headers: { 'content-type': 'application/json' },
    body: '{"amount": ',
  });
  expect(broken.status).toBe(400);
  expect(broken.body).toEqual({
    error: 'invalid_request',
    error_description: 'The request body is not valid JSON.',
  });
  const form = await callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    token,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'amount=5.00',
  });
  expect(form.status).toBe(415);
  expect(form.body.error).toBe('invalid_request');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('a payment in another currency than the account’s is refused', async () => {
  const account = await everyday();
  const before = await ledgerSnapshot();
  const answer = await pay({ from_account_id: account.id, amount: '5.00', currency: 'GBP', ...PAYEE });
  expect(answer.status).toBe(400);
  expect(await ledgerSnapshot()).toEqual(before);
});

test('a payment for more than the balance is 422 insufficient_funds and writes nothing', async () => {
  const account = (await accounts())[2];
  const before = await ledgerSnapshot();
  const answer = await pay({ from_account_id: account?.id, amount: '9999.99', currency: 'EUR', ...PAYEE });
  expect(answer.status).toBe(422);
  expect(answer.body.error).toBe('insufficient_funds');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('paying from another customer’s account is 404 and writes nothing', async () => {
  const other = await createTestCustomer(passbook.knex);
  await seedDemoAccounts(bankApi.knex, other.id);
  const [theirs] = await bankApi
    .knex('bank.accounts')
    .where({ customer_id: other.id })
    .select<{ id: string }[]>('id');
  if (!theirs) throw new Error('the other customer has no account');
  const balance = () =>
    bankApi.knex('bank.accounts').where({ id: theirs.id }).first<{ balance_minor: string }>('balance_minor');
  const balanceBefore = await balance();
  const before = await ledgerSnapshot();
  const answer = await pay({ from_account_id: theirs.id, amount: '1.00', currency: 'EUR', ...PAYEE });
  expect(answer.status).toBe(404);
  expect(answer.body.error).toBe('not_found');
  expect(await ledgerSnapshot()).toEqual(before);
  expect(await balance()).toEqual(balanceBefore);
});

test('two payments at once cannot both spend the same money', async () => {
  const account = (await accounts())[2];
  const balanceMinor = Math.round(Number(account?.balance) * 100);
  // Each pays a little over half the balance: exactly one of them can succeed.
  const half = ((Math.floor(balanceMinor / 2) + 1) / 100).toFixed(2);
  const body = { from_account_id: account?.id, amount: half, currency: 'EUR', ...PAYEE };
  const answers = await Promise.all([pay(body), pay(body)]);
  expect(answers.map((answer) => answer.status).sort()).toEqual([201, 422]);
  const after = (await accounts())[2];
  expect(Number(after?.balance)).toBeGreaterThanOrEqual(0);
});

test('a payments token from a one-factor sign-in is refused: 403 insufficient_user_authentication (RFC 9470), nothing booked', async () => {
  // Passbook asks for two factors before granting payments:write; this token, minted as if it had
  // not, proves the bank API's own second line of defence.
  const client = await passbook.provider.Client.find(appClientId);
  if (!client) throw new Error('the app is gone');
  const grant = new passbook.provider.Grant({ accountId: customer.id, clientId: appClientId });
  grant.addOIDCScope('openid payments:write');
  const grantId = await grant.save();
  const oneFactor = await new passbook.provider.AccessToken({
    accountId: customer.id,
    client,
    grantId,
    gty: 'authorization_code',
    scope: 'openid payments:write',
    extra: { acr: 'urn:passbook:acr:password', amr: ['pwd'] },
  }).save();
  const before = await ledgerSnapshot();
  const account = await everyday();

  const answer = await callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    token: oneFactor,
    json: { from_account_id: account.id, amount: '1.00', currency: 'EUR', ...PAYEE },
  });
  expect(answer.status).toBe(403);
  expect(answer.body.error).toBe('insufficient_user_authentication');
  expect(answer.headers.get('www-authenticate')).toContain('error="insufficient_user_authentication"');
  expect(answer.headers.get('www-authenticate')).toContain('acr_values="urn:passbook:acr:two-factors"');
  expect(await ledgerSnapshot()).toEqual(before);
});
