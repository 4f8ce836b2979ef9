import { createHash, randomUUID } from 'node:crypto';
import { callBankApi, startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestPassbook,
} from '../support/passbook.ts';
import {
  mintAccessToken,
  paymentBody,
  paymentDetail as paymentDetailFrom,
  type PaymentDetail,
  type SignIn,
} from '../support/payment-tokens.ts';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';

/**
 * POST /payments and GET /payments/:id with payment tokens: real Passbook, real introspection,
 * real PostgreSQL. Payment tokens are minted as the token endpoint saves them after the payment
 * consent (test/support/payment-tokens.ts), so that what the bank API does with them is tested
 * apart from the consent screen.
 */

let passbook: TestPassbook;
let bankApi: TestBankApi;
let customerId: string;
let appClientId: string;
let otherAppClientId: string;
let everydayIban: string;
let billsIban: string;
let othersIban: string;

async function ibansOf(owner: string): Promise<string[]> {
  const rows = await bankApi
    .knex('bank.accounts')
    .where({ customer_id: owner })
    .orderBy('name')
    .select<{ iban: string }[]>('iban');
  return rows.map((row) => row.iban);
}

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  customerId = (await createTestCustomer(passbook.knex)).id;
  await seedDemoAccounts(bankApi.knex, customerId);
  // Ordered by name: Bills Account, Everyday Account, Rainy Day Savings.
  [billsIban = '', everydayIban = ''] = await ibansOf(customerId);
  const other = (await createTestCustomer(passbook.knex)).id;
  await seedDemoAccounts(bankApi.knex, other);
  [othersIban = ''] = await ibansOf(other);
  appClientId = (await registerTestApp(passbook)).client_id;
  otherAppClientId = (await registerTestApp(passbook, { name: 'Other App' })).client_id;
});

afterAll(async () => {
  await bankApi.close();
  await passbook.close();
});

function paymentDetail(changes: Record<string, unknown> = {}): PaymentDetail {
  return paymentDetailFrom(everydayIban, changes);
}

function without(body: Record<string, unknown>, member: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(body).filter(([name]) => name !== member));
}

interface Mint {
  details?: PaymentDetail[];
  audience?: string;
  scope?: string;
  clientId?: string;
  customer?: string;
  signIn?: SignIn;
}

function mintToken(options: Mint = {}): Promise<string> {
  const { clientId = appClientId, customer = customerId, ...rest } = options;
  return mintAccessToken(passbook, { clientId, customerId: customer, ...rest });
}

/** A payment token exactly as Passbook issues one for `detail`. */
function paymentToken(detail: PaymentDetail = paymentDetail(), options: Mint = {}): Promise<string> {
  return mintToken({ details: [detail], audience: passbook.bankApiUrl, ...options });
}

/** `key` null: no Idempotency-Key header at all. */
function pay(token: string, body: unknown, key: string | null = randomUUID()) {
  return callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    token,
    json: body,
    headers: key === null ? {} : { 'idempotency-key': key },
  });
}

function readPayment(token: string, id: string) {
  return callBankApi(bankApi.url, `/payments/${id}`, { token });
}

/** Everything a payment could write for the customer: if a refusal changes any of it, something was booked. */
async function ledgerSnapshot() {
  const ofCustomer = (table: string) =>
    bankApi
      .knex(`${table} as row`)
      .join('bank.accounts as a', 'a.id', 'row.account_id')
      .where('a.customer_id', customerId)
      .count<{ count: string }[]>()
      .then(([row]) => Number(row?.count));
  const balances = await bankApi
    .knex('bank.accounts')
    .where({ customer_id: customerId })
    .orderBy('name')
    .pluck<string[]>('balance_minor');
  return {
    balances,
    transactions: await ofCustomer('bank.transactions'),
    payments: await ofCustomer('bank.payments'),
  };
}

async function paymentRowsOf(token: string) {
  return bankApi
    .knex('bank.payments')
    .where({ token_sha256: createHash('sha256').update(token).digest() })
    .select<{ id: string; client_id: string; amount_minor: string }[]>('id', 'client_id', 'amount_minor');
}

test('the approved payment is booked once: 201, the balance drops by exactly the amount, the ledger names the token by its hash', async () => {
  const detail = paymentDetail();
  const token = await paymentToken(detail);
  const before = await ledgerSnapshot();

  const answer = await pay(token, paymentBody(detail));
  expect(answer.status).toBe(201);
  expect(answer.body.payment).toMatchObject({
    status: 'booked',
    instructedAmount: { currency: 'EUR', amount: '25.00' },
    creditorName: 'Jo Bloggs',
    creditorAccount: { iban: 'NL91ABNA0417164300' },
    remittanceInformationUnstructured: 'Dinner',
    debtorAccount: { iban: everydayIban },
  });

  const after = await ledgerSnapshot();
  expect(after.payments).toBe(before.payments + 1);
  expect(after.transactions).toBe(before.transactions + 1);
  expect(Number(after.balances[1])).toBe(Number(before.balances[1]) - 2500);
  expect([after.balances[0], after.balances[2]]).toEqual([before.balances[0], before.balances[2]]);
  const rows = await paymentRowsOf(token);
  expect(rows).toEqual([
    { id: (answer.body.payment as { id: string }).id, client_id: appClientId, amount_minor: '2500' },
  ]);
  const stored = JSON.stringify(await bankApi.knex('bank.payments').select());
  expect(stored).not.toContain(token);
});

test.each<[string, (body: Record<string, unknown>) => Record<string, unknown>, string]>([
  [
    'a larger amount',
    (body) => ({ ...body, instructedAmount: { currency: 'EUR', amount: '25.01' } }),
    'instructedAmount.amount',
  ],
  [
    'a smaller amount',
    (body) => ({ ...body, instructedAmount: { currency: 'EUR', amount: '2.50' } }),
    'instructedAmount.amount',
  ],
  [
    'another currency',
    (body) => ({ ...body, instructedAmount: { currency: 'GBP', amount: '25.00' } }),
    'instructedAmount.currency',
  ],
  ['another creditor name', (body) => ({ ...body, creditorName: 'Jo Blogs' }), 'creditorName'],
  [
    'the creditor name with a trailing space',
    (body) => ({ ...body, creditorName: 'Jo Bloggs ' }),
    'creditorName',
  ],
  [
    'another creditor account',
    (body) => ({ ...body, creditorAccount: { iban: 'DE02100100109307118603' } }),
    'creditorAccount',
  ],
  [
    'another debtor account of the customer',
    (body) => ({ ...body, debtorAccount: { iban: billsIban } }),
    'debtorAccount',
  ],
  [
    'another customer’s debtor account',
    (body) => ({ ...body, debtorAccount: { iban: othersIban } }),
    'debtorAccount',
  ],
  [
    'another reference',
    (body) => ({ ...body, remittanceInformationUnstructured: 'Lunch' }),
    'remittanceInformationUnstructured',
  ],
  [
    'no reference',
    (body) => without(body, 'remittanceInformationUnstructured'),
    'remittanceInformationUnstructured',
  ],
])(
  'a body with %s is 403 payment_not_approved, books nothing, and leaves the token usable',
  async (_case, tamper, member) => {
    const detail = paymentDetail();
    const token = await paymentToken(detail);
    const before = await ledgerSnapshot();

    const answer = await pay(token, tamper(paymentBody(detail)));
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('payment_not_approved');
    expect(answer.body.error_description).toContain(member);
    expect(await ledgerSnapshot()).toEqual(before);
    expect(await paymentRowsOf(token)).toEqual([]);

    expect((await pay(token, paymentBody(detail))).status).toBe(201);
  },
);

test('the same payment written differently (IBAN with spaces, amount without cents) is the approved one', async () => {
  const detail = paymentDetail({ instructedAmount: { currency: 'EUR', amount: '7' } });
  const token = await paymentToken(detail);
  const answer = await pay(token, {
    ...paymentBody(detail),
    instructedAmount: { currency: 'EUR', amount: '7.00' },
    creditorAccount: { iban: 'NL91 ABNA 0417 1643 00' },
  });
  expect(answer.status).toBe(201);
  expect(answer.body.payment).toMatchObject({ instructedAmount: { amount: '7.00' } });
});

test('a name written with a combining accent is paid as the customer approved it', async () => {
  const detail = paymentDetail({
    instructedAmount: { currency: 'EUR', amount: '1.10' },
    creditorName: 'Jose\u0301 Nu\u0301n\u0303ez',
  });
  const answer = await pay(await paymentToken(detail), paymentBody(detail));
  expect(answer.status).toBe(201);
  expect(answer.body.payment).toMatchObject({ creditorName: 'Jose\u0301 Nu\u0301n\u0303ez' });
});

test('a token pays once: a second payment with another Idempotency-Key is 409 payment_token_used, nothing more booked', async () => {
  const detail = paymentDetail({ instructedAmount: { currency: 'EUR', amount: '3.00' } });
  const token = await paymentToken(detail);
  expect((await pay(token, paymentBody(detail), 'first')).status).toBe(201);
  const before = await ledgerSnapshot();

  const again = await pay(token, paymentBody(detail), 'second');
  expect(again.status).toBe(409);
  expect(again.body).toMatchObject({ error: 'payment_token_used' });
  expect(await ledgerSnapshot()).toEqual(before);
  expect(await paymentRowsOf(token)).toHaveLength(1);
});

test('a retry with the same token, Idempotency-Key and body gets the same payment back, booked once', async () => {
  const detail = paymentDetail({ instructedAmount: { currency: 'EUR', amount: '4.00' } });
  const token = await paymentToken(detail);
  const first = await pay(token, paymentBody(detail), 'retry-me');
  expect(first.status).toBe(201);
  const before = await ledgerSnapshot();

  const retry = await pay(token, paymentBody(detail), 'retry-me');
  expect(retry.status).toBe(201);
  expect(retry.body).toEqual(first.body);
  expect(await ledgerSnapshot()).toEqual(before);
  expect(await paymentRowsOf(token)).toHaveLength(1);
});

test('two identical requests at once book exactly one payment, and both get it', async () => {
  const detail = paymentDetail({ instructedAmount: { currency: 'EUR', amount: '5.00' } });
  const token = await paymentToken(detail);
  const before = await ledgerSnapshot();

  const answers = await Promise.all([
    pay(token, paymentBody(detail), 'at-once'),
    pay(token, paymentBody(detail), 'at-once'),
  ]);
  expect(answers.map((answer) => answer.status)).toEqual([201, 201]);
  expect(answers[0]?.body).toEqual(answers[1]?.body);
  const rows = await paymentRowsOf(token);
  expect(rows).toHaveLength(1);
  expect((await ledgerSnapshot()).payments).toBe(before.payments + 1);
});

test('two requests at once with different keys: one payment booked, the other refused', async () => {
  const detail = paymentDetail({ instructedAmount: { currency: 'EUR', amount: '6.00' } });
  const token = await paymentToken(detail);
  const answers = await Promise.all([
    pay(token, paymentBody(detail), 'one'),
    pay(token, paymentBody(detail), 'two'),
  ]);
  expect(answers.map((answer) => answer.status).sort()).toEqual([201, 409]);
  expect(await paymentRowsOf(token)).toHaveLength(1);
});

test.each<[string, string | null]>([
  ['no Idempotency-Key', null],
  ['an empty Idempotency-Key', ''],
  ['an Idempotency-Key of 65 characters', 'k'.repeat(65)],
  ['an Idempotency-Key with a space', 'two words'],
])('a payment with %s is 400 invalid_request and books nothing', async (_case, key) => {
  const detail = paymentDetail();
  const token = await paymentToken(detail);
  const before = await ledgerSnapshot();
  const answer = await pay(token, paymentBody(detail), key);
  expect(answer.status).toBe(400);
  expect(answer.body.error).toBe('invalid_request');
  expect(answer.body.error_description).toContain('Idempotency-Key');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('an Idempotency-Key of 64 visible characters is accepted', async () => {
  const detail = paymentDetail({ instructedAmount: { currency: 'EUR', amount: '1.00' } });
  const token = await paymentToken(detail);
  expect((await pay(token, paymentBody(detail), `!~${'k'.repeat(62)}`)).status).toBe(201);
});

test.each<[string, () => Promise<string>]>([
  ['a token with accounts:read and no details', () => mintToken({ scope: 'accounts:read' })],
  ['a payment detail on a token for no audience', () => mintToken({ details: [paymentDetail()] })],
  [
    'a payment detail on a token for another audience',
    () => paymentToken(paymentDetail(), { audience: 'https://elsewhere.example' }),
  ],
  ['a payment detail beside a scope', () => paymentToken(paymentDetail(), { scope: 'accounts:read' })],
  [
    'two payment details',
    () => mintToken({ details: [paymentDetail(), paymentDetail()], audience: passbook.bankApiUrl }),
  ],
  ['a detail of another type', () => paymentToken({ ...paymentDetail(), type: 'account_information' })],
  [
    'a detail with a member this bank does not know',
    () => paymentToken(paymentDetail({ requestedExecutionDate: '2030-01-01' })),
  ],
  [
    'a detail for another location',
    () => paymentToken(paymentDetail({ locations: ['https://elsewhere.example'] })),
  ],
  ['a detail whose actions leave out initiate', () => paymentToken(paymentDetail({ actions: ['status'] }))],
  [
    'a detail with a numeric amount',
    () => paymentToken(paymentDetail({ instructedAmount: { currency: 'EUR', amount: 25 } })),
  ],
])('%s cannot pay: 403 payment_not_approved, nothing booked', async (_case, mint) => {
  const token = await mint();
  const before = await ledgerSnapshot();
  const answer = await pay(token, paymentBody(paymentDetail()));
  expect(answer.status).toBe(403);
  expect(answer.body.error).toBe('payment_not_approved');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('a detail naming the bank API as its location, with actions initiate and status, pays', async () => {
  const detail = paymentDetail({
    instructedAmount: { currency: 'EUR', amount: '1.50' },
    locations: [passbook.bankApiUrl],
    actions: ['initiate', 'status'],
  });
  const answer = await pay(await paymentToken(detail), paymentBody(detail));
  expect(answer.status).toBe(201);
});

test('a payment token from a one-factor sign-in is 403 insufficient_user_authentication (RFC 9470), nothing booked', async () => {
  const detail = paymentDetail();
  const token = await paymentToken(detail, {
    signIn: { acr: 'urn:passbook:acr:password', amr: ['pwd'] },
  });
  const before = await ledgerSnapshot();
  const answer = await pay(token, paymentBody(detail));
  expect(answer.status).toBe(403);
  expect(answer.body.error).toBe('insufficient_user_authentication');
  expect(answer.headers.get('www-authenticate')).toContain('acr_values="urn:passbook:acr:two-factors"');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('an approved debtor account that is not the customer’s is refused: 403, nothing booked', async () => {
  const detail = paymentDetail({ debtorAccount: { iban: othersIban } });
  const token = await paymentToken(detail);
  const before = await ledgerSnapshot();
  const answer = await pay(token, paymentBody(detail));
  expect(answer.status).toBe(403);
  expect(answer.body.error).toBe('payment_not_approved');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('more than the balance is 422 insufficient_funds, books nothing', async () => {
  const detail = paymentDetail({
    instructedAmount: { currency: 'EUR', amount: '9999.99' },
    debtorAccount: { iban: billsIban },
  });
  const token = await paymentToken(detail);
  const before = await ledgerSnapshot();
  const answer = await pay(token, paymentBody(detail));
  expect(answer.status).toBe(422);
  expect(answer.body.error).toBe('insufficient_funds');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('two payment tokens at once cannot both spend the same money', async () => {
  const [row] = await bankApi
    .knex('bank.accounts')
    .where({ iban: billsIban })
    .pluck<string[]>('balance_minor');
  // Each pays a little over half the balance: exactly one of them can succeed.
  const half = ((Math.floor(Number(row) / 2) + 1) / 100).toFixed(2);
  const detail = paymentDetail({
    instructedAmount: { currency: 'EUR', amount: half },
    debtorAccount: { iban: billsIban },
  });
  const tokens = await Promise.all([paymentToken(detail), paymentToken(detail)]);
  const answers = await Promise.all(tokens.map((token) => pay(token, paymentBody(detail))));
  expect(answers.map((answer) => answer.status).sort()).toEqual([201, 422]);
  const [after] = await bankApi
    .knex('bank.accounts')
    .where({ iban: billsIban })
    .pluck<string[]>('balance_minor');
  expect(Number(after)).toBeGreaterThanOrEqual(0);
});

test.each<[string, (body: Record<string, unknown>) => unknown]>([
  ['the detail’s type', (body) => ({ ...body, type: 'payment_initiation' })],
  ['an unknown member', (body) => ({ ...body, extra: true })],
  ['a numeric amount', (body) => ({ ...body, instructedAmount: { currency: 'EUR', amount: 25 } })],
  ['a missing debtor account', (body) => without(body, 'debtorAccount')],
  ['a name with a line break', (body) => ({ ...body, creditorName: 'Jo\nBloggs' })],
  ['a name with a bidi override', (body) => ({ ...body, creditorName: 'Jo \u202eBloggs' })],
  [
    'an IBAN with a wrong check digit',
    (body) => ({ ...body, creditorAccount: { iban: 'NL92ABNA0417164300' } }),
  ],
  ['not an object', () => ['a']],
])('a body with %s is 400 invalid_request, nothing booked', async (_case, change) => {
  const detail = paymentDetail();
  const token = await paymentToken(detail);
  const before = await ledgerSnapshot();
  const answer = await pay(token, change(paymentBody(detail)));
  expect(answer.status).toBe(400);
  expect(answer.body.error).toBe('invalid_request');
  expect(await ledgerSnapshot()).toEqual(before);
});

test('a body that is not JSON is 415', async () => {
  const answer = await callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    token: await paymentToken(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': 'form' },
    body: 'amount=25.00',
  });
  expect(answer.status).toBe(415);
  expect(answer.body.error).toBe('invalid_request');
});

test('a payment token reads no accounts and no transactions: 403 insufficient_scope', async () => {
  const token = await paymentToken();
  for (const path of ['/accounts', '/transactions']) {
    const answer = await callBankApi(bankApi.url, path, { token });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('insufficient_scope');
  }
});

describe('GET /payments/:id', () => {
  let token: string;
  let id: string;
  let booked: unknown;

  beforeAll(async () => {
    const detail = paymentDetail({ instructedAmount: { currency: 'EUR', amount: '2.00' } });
    token = await paymentToken(detail);
    const answer = await pay(token, paymentBody(detail));
    booked = answer.body.payment;
    id = (booked as { id: string }).id;
  });

  test('the payment token that booked it reads its status', async () => {
    const answer = await readPayment(token, id);
    expect(answer.status).toBe(200);
    expect(answer.body.payment).toEqual(booked);
  });

  test('the same app with the customer’s accounts:read reads it', async () => {
    const answer = await readPayment(await mintToken({ scope: 'accounts:read' }), id);
    expect(answer.status).toBe(200);
    expect(answer.body.payment).toEqual(booked);
  });

  test.each<[string, () => Promise<string>]>([
    ['another payment token of the same customer and app', () => paymentToken()],
    [
      'another app with the customer’s accounts:read',
      () => mintToken({ scope: 'accounts:read', clientId: otherAppClientId }),
    ],
    [
      'another customer with accounts:read at the same app',
      async () => {
        const other = (await createTestCustomer(passbook.knex)).id;
        return mintToken({ scope: 'accounts:read', customer: other });
      },
    ],
  ])('%s gets 404, as for a payment that does not exist', async (_case, mint) => {
    const answer = await readPayment(await mint(), id);
    expect(answer.status).toBe(404);
    expect(answer.body.error).toBe('not_found');
  });

  test('an id that is not a payment is 404', async () => {
    expect((await readPayment(token, randomUUID())).status).toBe(404);
    expect((await readPayment(token, 'not-a-uuid')).status).toBe(404);
  });

  test('a token with neither details nor accounts:read is 403 insufficient_scope', async () => {
    const answer = await readPayment(await mintToken({ scope: 'transactions:read' }), id);
    expect(answer.status).toBe(403);
    expect(answer.body).toMatchObject({ error: 'insufficient_scope', scope: 'accounts:read' });
  });

  test('a payment token whose actions leave out status may pay but not read it', async () => {
    const detail = paymentDetail({
      instructedAmount: { currency: 'EUR', amount: '1.25' },
      actions: ['initiate'],
    });
    const initiateOnly = await paymentToken(detail);
    const paid = await pay(initiateOnly, paymentBody(detail));
    expect(paid.status).toBe(201);
    const answer = await readPayment(initiateOnly, (paid.body.payment as { id: string }).id);
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('payment_not_approved');
  });

  test('without a token it is 401', async () => {
    expect((await callBankApi(bankApi.url, `/payments/${id}`)).status).toBe(401);
  });
});
