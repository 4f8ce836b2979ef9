import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, test } from '@jest/globals';
import { decodeJwt } from 'jose';
import { pino } from 'pino';
import { ensureSettleUpKey } from '../../examples/settle-up/app-key.ts';
import { loadSettleUpConfig } from '../../examples/settle-up/config.ts';
import { startSettleUp, type RunningSettleUp } from '../../examples/settle-up/start.ts';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  ACCESS_TOKEN,
  dpopKeyOf,
  REQUEST_URI,
  startFakePaymentBank,
  type FakePaymentBank,
} from '../support/fake-payment-bank.ts';
import { freePort } from '../../scripts/ports.ts';

/**
 * Settle Up's side of a FAPI 2.0 payment, against a stand-in bank: what it pushes (PAR), how it
 * authenticates and binds its tokens (private_key_jwt, PKCE, DPoP), and that it books the
 * approved payment once, retrying a lost answer with the same Idempotency-Key. The customer's
 * sign-in and consent at the bank are skipped: the test writes the bank's redirect itself.
 */

const PAYMENT = {
  instructedAmount: { currency: 'EUR', amount: '25.00' },
  creditorName: 'Jo Bloggs',
  creditorAccount: { iban: 'NL91ABNA0417164300' },
  remittanceInformationUnstructured: 'Dinner',
};
const DEBTOR = { iban: 'NL83PSBK6767045593' };
const BOOKED = { payment: { id: 'pay_123', status: 'booked', ...PAYMENT, debtorAccount: DEBTOR } };

let folder: string;
let bank: FakePaymentBank;
let settleUp: RunningSettleUp;
const logLines: string[] = [];

beforeAll(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'settle-up-'));
  const keyFile = path.join(folder, 'settle-up-key.json');
  bank = await startFakePaymentBank((await ensureSettleUpKey(keyFile)).jwks);
  const port = await freePort();
  const config = loadSettleUpConfig({
    PORT: String(port),
    OIDC_ISSUER: bank.issuer,
    BANK_API_URL: bank.issuer,
    OIDC_CLIENT_ID: 'settle-up',
    SETTLE_UP_KEY_FILE: keyFile,
  });
  // Every line Settle Up logs, at every level, is kept to look for secrets in.
  const log = pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) });
  settleUp = await startSettleUp(config, log);
});

afterAll(async () => {
  await settleUp.close();
  await bank.close();
  await rm(folder, { recursive: true, force: true });
});

beforeEach(() => {
  bank.requests.length = 0;
  bank.paymentAnswers = [{ status: 201, body: BOOKED }];
  bank.approvedDetails = [{ type: 'payment_initiation', ...PAYMENT, debtorAccount: DEBTOR }];
});

function recorded(requestPath: string) {
  return bank.requests.filter((request) => request.path === requestPath);
}

/** Home page → "Pay Jo back" → the redirect to the bank; returns the agent and the PAR's state. */
async function payJoBack(): Promise<{ agent: CustomerAgent; state: string; toBank: Page }> {
  const agent = new CustomerAgent([`${bank.issuer}/auth`]);
  const home = await agent.open(`${settleUp.url}/`);
  expect(home.body).toContain('You owe Jo Bloggs €25.00 for Dinner');
  const toBank = await agent.submit(home, '/pay');
  const state = new URLSearchParams(recorded('/par').at(-1)?.body).get('state') ?? '';
  return { agent, state, toBank };
}

function callback(query: Record<string, string>): string {
  return `${settleUp.url}/callback?${new URLSearchParams({ ...query, iss: bank.issuer }).toString()}`;
}

test('pays Jo back: PAR with the payment, private_key_jwt, PKCE and DPoP, then one booking', async () => {
  const { agent, state, toBank } = await payJoBack();
  const redirect = new URL(toBank.url);
  expect(redirect.origin + redirect.pathname).toBe(`${bank.issuer}/auth`);
  // Only the request_uri travels through the browser; the payment itself was pushed.
  expect(Object.fromEntries(redirect.searchParams)).toEqual({
    client_id: 'settle-up',
    request_uri: REQUEST_URI,
  });

  const [par] = recorded('/par');
  const pushed = new URLSearchParams(par?.body);
  expect(JSON.parse(pushed.get('authorization_details') ?? '')).toEqual([
    { type: 'payment_initiation', ...PAYMENT },
  ]);
  expect(pushed.get('scope')).toBe('openid');
  expect(pushed.get('redirect_uri')).toBe(`${settleUp.url}/callback`);
  expect(pushed.get('code_challenge_method')).toBe('S256');
  expect(pushed.get('client_secret')).toBeNull();
  expect(decodeJwt(pushed.get('client_assertion') ?? '')).toMatchObject({
    aud: bank.issuer,
    iss: 'settle-up',
    sub: 'settle-up',
  });

  const receipt = await agent.open(callback({ code: 'the-code', state }));
  expect(receipt.url).toBe(`${settleUp.url}/`);
  expect(receipt.body).toContain('You and Jo are square');
  expect(receipt.document.querySelector('.lead')?.text.replace(/\s+/g, ' ').trim()).toBe(
    'Paid €25.00 to Jo Bloggs from NL83 PSBK 6767 0455 93',
  );
  expect(receipt.document.querySelector('.payment-id')?.text).toBe('pay_123');
  expect(receipt.document.querySelector('.payment-status')?.text).toBe('booked');

  const [payment, ...others] = recorded('/payments');
  expect(others).toHaveLength(0);
  expect(payment?.headers.authorization).toBe(`DPoP ${ACCESS_TOKEN}`);
  expect(payment?.headers['content-type']).toBe('application/json');
  expect(JSON.parse(payment?.body ?? '')).toEqual({ ...PAYMENT, debtorAccount: DEBTOR });
  // One DPoP key for the whole payment: the code, the token and the booking are bound to it.
  const [token] = recorded('/token');
  const keys = new Set(await Promise.all([par, token, payment].map((request) => dpopKeyOf(request!))));
  expect(keys.size).toBe(1);
  // The access token was for this payment only: Settle Up keeps nothing of it.
  expect(settleUp.sessions.list().some((session) => JSON.stringify(session).includes(ACCESS_TOKEN))).toBe(
    false,
  );
});

test('every payment has its own DPoP key and Idempotency-Key', async () => {
  const first = await payJoBack();
  await first.agent.open(callback({ code: 'one', state: first.state }));
  const second = await payJoBack();
  await second.agent.open(callback({ code: 'two', state: second.state }));
  const pars = recorded('/par');
  expect(await dpopKeyOf(pars[0]!)).not.toBe(await dpopKeyOf(pars[1]!));
  const keys = recorded('/payments').map((request) => request.headers['idempotency-key']);
  expect(keys).toHaveLength(2);
  expect(keys[0]).not.toBe(keys[1]);
});

test.each([
  ['the answer is lost', 'hang-up' as const],
  ['the bank fails', { status: 503, body: { error: 'temporarily_unavailable' } }],
])('when %s, the booking is retried once with the same Idempotency-Key', async (_, firstAnswer) => {
  bank.paymentAnswers = [firstAnswer, { status: 201, body: BOOKED }];
  const { agent, state } = await payJoBack();
  const receipt = await agent.open(callback({ code: 'the-code', state }));
  expect(receipt.body).toContain('You and Jo are square');
  const attempts = recorded('/payments');
  expect(attempts).toHaveLength(2);
  expect(attempts[0]?.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/);
  expect(attempts[1]?.headers['idempotency-key']).toBe(attempts[0]?.headers['idempotency-key']);
  expect(attempts[1]?.body).toBe(attempts[0]?.body);
});

test('a bank that keeps failing is retried only once, and the customer told to check', async () => {
  bank.paymentAnswers = [{ status: 503 }];
  const { agent, state } = await payJoBack();
  const page = await agent.open(callback({ code: 'the-code', state }));
  expect(page.status).toBe(503);
  expect(page.body).toContain('Check your bank account before you pay again');
  expect(recorded('/payments')).toHaveLength(2);
});

test('a refusal names what the bank said, is not retried, and leaves the debt open', async () => {
  bank.paymentAnswers = [{ status: 409, body: { error: 'payment_token_used', error_description: 'used' } }];
  const { agent, state } = await payJoBack();
  const page = await agent.open(callback({ code: 'the-code', state }));
  expect(page.status).toBe(502);
  expect(page.body).toContain('Your bank answered 409 payment_token_used');
  expect(page.body).not.toMatch(/at \w+ \(|Error:/);
  expect(recorded('/payments')).toHaveLength(1);
  expect((await agent.open(`${settleUp.url}/`)).body).toContain('You owe Jo Bloggs');
});

test('saying no at the bank books nothing and offers a way back', async () => {
  const { agent, state } = await payJoBack();
  const page = await agent.open(callback({ error: 'access_denied', state }));
  expect(page.status).toBe(200);
  expect(page.body).toContain('You did not approve the payment');
  expect(page.document.querySelector('a.button')?.getAttribute('href')).toBe('/');
  expect(recorded('/token')).toHaveLength(0);
  expect(recorded('/payments')).toHaveLength(0);
});

test('an approval of another payment is not booked', async () => {
  bank.approvedDetails = [
    {
      type: 'payment_initiation',
      ...PAYMENT,
      instructedAmount: { currency: 'EUR', amount: '250.00' },
      debtorAccount: DEBTOR,
    },
  ];
  const { agent, state } = await payJoBack();
  const page = await agent.open(callback({ code: 'the-code', state }));
  expect(page.body).toContain('Your bank approved a different payment');
  expect(recorded('/payments')).toHaveLength(0);
});

test('the callback is good once, only with its state, and "Pay" needs the CSRF token', async () => {
  const { agent, state } = await payJoBack();
  const forged = await agent.open(callback({ code: 'the-code', state: 'not-the-state' }));
  expect(forged.status).toBe(400);
  expect(forged.body).toContain('nothing was paid');
  const replayed = await agent.open(callback({ code: 'the-code', state }));
  expect(replayed.status).toBe(400);
  expect(replayed.body).toContain('This link has expired');
  expect(recorded('/payments')).toHaveLength(0);

  const noToken = await agent.open(`${settleUp.url}/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'csrf=wrong',
  });
  expect(noToken.status).toBe(403);
});

test('a token the bank API refuses is named by its challenge', async () => {
  bank.paymentAnswers = [
    { status: 401, body: { error: 'invalid_token' }, challenge: 'DPoP error="invalid_token", algs="ES256"' },
  ];
  const { agent, state } = await payJoBack();
  const page = await agent.open(callback({ code: 'the-code', state }));
  expect(page.status).toBe(502);
  expect(page.body).toContain('Your bank answered 401 invalid_token');
  expect(recorded('/payments')).toHaveLength(1);
});

test('nothing secret reaches the logs', () => {
  expect(logLines.length).toBeGreaterThan(0);
  const logged = logLines.join('');
  expect(logged).not.toContain(ACCESS_TOKEN);
  expect(logged).not.toMatch(/eyJ[\w-]+\.eyJ/);
  expect(logged).not.toContain('the-code');
});

test('a bank that cannot be reached is said to be not answering, before anything is asked', async () => {
  const port = await freePort();
  const unreachable = await startSettleUp(
    loadSettleUpConfig({
      PORT: String(port),
      OIDC_ISSUER: `http://127.0.0.1:${await freePort()}`,
      OIDC_CLIENT_ID: 'settle-up',
      SETTLE_UP_KEY_FILE: path.join(folder, 'settle-up-key.json'),
    }),
    pino({ level: 'silent' }),
  );
  try {
    const agent = new CustomerAgent();
    const page = await agent.submit(await agent.open(`${unreachable.url}/`), '/pay');
    expect(page.status).toBe(503);
    expect(page.body).toContain('Your bank is not answering');
  } finally {
    await unreachable.close();
  }
});
