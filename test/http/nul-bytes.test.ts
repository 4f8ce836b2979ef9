import { describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { callBankApi, startTestBankApi } from '../support/bank-api.ts';
import { CustomerAgent } from '../support/customer-agent.ts';
import {
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  TEST_REDIRECT_URI,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, completeFlow, discoverAs } from '../support/third-party-app.ts';
import { mintPaymentToken, paymentBody, paymentDetail } from '../support/payment-tokens.ts';

/**
 * A NUL byte (and a lone surrogate) is something PostgreSQL cannot store, so it used to reach a
 * query, fail there and answer 500. Each endpoint family now answers in its standard error form,
 * and stores nothing.
 */

const passbook = useTestPassbook();

interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

async function send(path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`${passbook.url}${path}`, { ...init, redirect: 'manual' });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

function form(body: string, extra: Record<string, string> = {}): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...extra },
    body,
  };
}

function expectOAuthJsonError(answer: Answer, errors: string[]): void {
  expect(answer.status).toBeGreaterThanOrEqual(400);
  expect(answer.status).toBeLessThan(500);
  expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
  expect(errors).toContain((JSON.parse(answer.body) as { error?: unknown }).error);
}

function expectErrorPage(answer: Answer): void {
  expect(answer.status).toBe(400);
  expect(answer.headers.get('location')).toBeNull();
  expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
  expect(answer.body).not.toMatch(/server_error|node_modules|\.ts:\d/);
}

async function rowsMentioning(text: string): Promise<number> {
  const [row] = await passbook
    .knex('oidc_models')
    .whereRaw('strpos(payload::text, ?) > 0', [text])
    .count<{ count: string }[]>({ count: '*' });
  return Number(row?.count);
}

/** A valid authorization request of a fresh app, as query parameters, with `changes` applied. */
async function authorizationQuery(changes: Record<string, string>): Promise<URLSearchParams> {
  const app = await registerTestApp(passbook);
  const request = await authorizationRequest(await discoverAs(passbook, app), 'openid');
  const query = new URLSearchParams(request.url.searchParams);
  for (const [name, value] of Object.entries(changes)) query.set(name, value);
  return query;
}

describe('a NUL client_id', () => {
  test('at /auth gets the error page and no redirect', async () => {
    const query = await authorizationQuery({ client_id: '\u0000' });
    expectErrorPage(await send(`/auth?${query.toString()}`));
  });

  test('at /token, in the body or in Basic credentials, gets a JSON invalid_client or invalid_request', async () => {
    const body = 'grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback';
    expectOAuthJsonError(await send('/token', form(`${body}&client_id=%00`)), [
      'invalid_client',
      'invalid_request',
    ]);
    const nulBasic = `Basic ${Buffer.from('%00:secret').toString('base64')}`;
    expectOAuthJsonError(await send('/token', form(body, { authorization: nulBasic })), [
      'invalid_client',
      'invalid_request',
    ]);
  });

  test('at /token/revocation and /token/introspection gets a JSON error', async () => {
    for (const path of ['/token/revocation', '/token/introspection']) {
      expectOAuthJsonError(await send(path, form('token=abc&client_id=%00')), [
        'invalid_client',
        'invalid_request',
      ]);
    }
  });

  test('at /request (PAR) gets a JSON error and stores no request', async () => {
    const state = `nul-${randomBytes(6).toString('hex')}`;
    const query = await authorizationQuery({ client_id: '\u0000', state });
    expectOAuthJsonError(await send('/request', form(query.toString())), [
      'invalid_client',
      'invalid_request',
    ]);
    expect(await rowsMentioning(state)).toBe(0);
  });

  test('at /session/end gets the error page', async () => {
    expectErrorPage(await send('/session/end?client_id=%00', { headers: { accept: 'text/html' } }));
  });
});

describe('a NUL in a value the provider would store', () => {
  test('a state of %00 at /auth goes back to the app as invalid_request, and no interaction is stored', async () => {
    const nonce = `nul-${randomBytes(6).toString('hex')}`;
    const query = await authorizationQuery({ state: '\u0000', nonce });
    const answer = await send(`/auth?${query.toString()}`);
    expect(answer.status).toBe(303);
    const location = new URL(answer.headers.get('location') ?? '');
    expect(`${location.origin}${location.pathname}`).toBe(TEST_REDIRECT_URI);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('code')).toBeNull();
    expect(await rowsMentioning(nonce)).toBe(0);
  });

  test('a pushed request with a NUL nonce is kept encoded; using it goes back to the app as invalid_request', async () => {
    const app = await registerTestApp(passbook);
    const request = await authorizationRequest(await discoverAs(passbook, app), 'openid');
    const query = new URLSearchParams(request.url.searchParams);
    query.set('nonce', 'a\u0000b');
    const pushed = await send('/request', form(query.toString(), { authorization: basicAuthorization(app) }));
    expect(pushed.status).toBe(201);
    const { request_uri: requestUri } = JSON.parse(pushed.body) as { request_uri: string };

    const answer = await send(
      `/auth?${new URLSearchParams({ client_id: app.client_id, request_uri: requestUri }).toString()}`,
    );

    expect(answer.status).toBe(303);
    const location = new URL(answer.headers.get('location') ?? '');
    expect(`${location.origin}${location.pathname}`).toBe(TEST_REDIRECT_URI);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    const [interactions] = await passbook
      .knex('oidc_models')
      .where({ kind: 'Interaction' })
      .whereRaw("payload->'params'->>'client_id' = ?", [app.client_id])
      .count<{ count: string }[]>({ count: '*' });
    expect(Number(interactions?.count)).toBe(0);
  });

  test('a JSON body with a lone surrogate at /token is a JSON error, not a 500', async () => {
    const app = await registerTestApp(passbook);
    const answer = await send('/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basicAuthorization(app) },
      body: '{"grant_type":"refresh_token","refresh_token":"\\ud800"}',
    });
    expectOAuthJsonError(answer, ['invalid_request', 'invalid_grant']);
  });
});

describe('the bank pages', () => {
  test('a sign-in with a NUL username is a wrong password, not a 500', async () => {
    const agent = new CustomerAgent();
    const page = await agent.open(`${passbook.url}/account/sign-in`);
    const answer = await agent.submit(page, '/account/sign-in', { username: 'demo\u0000', password: 'x' });
    expect(answer.status).toBe(401);
    expect(answer.body).toContain('The username or password is not right.');
  });

  test('an account page path with %00 gets the error page', async () => {
    const agent = new CustomerAgent();
    const customer = await createTestCustomer(passbook.knex);
    const page = await agent.open(`${passbook.url}/account/sign-in`);
    const account = await agent.submit(page, '/account/sign-in', {
      username: customer.username,
      password: customer.password,
    });
    const csrf = account.document.querySelector('input[name="csrf"]')?.getAttribute('value') ?? '';
    for (const path of ['/account/sessions/%00/sign-out', '/account/apps/%00/revoke']) {
      const answer = await agent.open(
        `${passbook.url}${path}`,
        form(new URLSearchParams({ csrf }).toString()),
      );
      expect(answer.status).toBe(400);
      expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    }
  });
});

describe('the bank API', () => {
  test('an account id of %00, a NUL creditor name and a JWT-shaped token get 4xx JSON errors', async () => {
    const bankApi = await startTestBankApi(passbook);
    try {
      const customer = await createTestCustomer(passbook.knex);
      await seedDemoAccounts(bankApi.knex, customer.id);
      const app = await registerTestApp(passbook);
      const { tokens } = await completeFlow(
        passbook,
        app,
        customer,
        'openid accounts:read transactions:read',
      );
      const token = tokens.access_token;

      const transactions = await callBankApi(bankApi.url, '/accounts/%00/transactions', { token });
      expect(transactions.status).toBe(404);

      const accounts = await callBankApi<{ accounts: { iban: string }[] }>(bankApi.url, '/accounts', {
        token,
      });
      const detail = paymentDetail(accounts.body.accounts[0]?.iban ?? '');
      const payment = await callBankApi(bankApi.url, '/payments', {
        token: await mintPaymentToken(passbook, detail, { clientId: app.client_id, customerId: customer.id }),
        method: 'POST',
        json: { ...paymentBody(detail), creditorName: 'Jo\u0000Bloggs' },
        headers: { 'idempotency-key': 'nul' },
      });
      expect(payment.status).toBe(400);
      expect(payment.body.error).toBe('invalid_request');

      const jwtShaped = await callBankApi(bankApi.url, '/accounts', { token: 'eyJhbGciOiJub25lIn0.e30.' });
      expect(jwtShaped.status).toBe(401);
      expect(jwtShaped.body.error).toBe('invalid_token');
    } finally {
      await bankApi.close();
    }
  });
});
