import { CustomerAgent } from '../support/customer-agent.ts';
import { callBankApi, startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import {
  basicAuthorization,
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';

/** RFC 6750 at the bank API: how a token must be sent, and what every kind of bad token gets. */

/** Both schemes the bank API takes (DPoP: test/bank-api/dpop.test.ts), as fetch joins the two headers. */
const NO_TOKEN_CHALLENGES = 'Bearer, DPoP algs="ES256 PS256 EdDSA"';

let passbook: TestPassbook;
let bankApi: TestBankApi;
let customer: TestCustomer;

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  customer = await createTestCustomer(passbook.knex);
  await seedDemoAccounts(bankApi.knex, customer.id);
});

afterAll(async () => {
  await bankApi.close();
  await passbook.close();
});

async function tokensFor(scope: string) {
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, customer, scope);
  return { app, tokens };
}

function basic(app: { client_id: string; client_secret?: string }): string {
  return basicAuthorization(app);
}

test('a request without a token gets 401 and bare Bearer and DPoP challenges, with no error code', async () => {
  const answer = await callBankApi(bankApi.url, '/transactions');
  expect(answer.status).toBe(401);
  expect(answer.headers.get('www-authenticate')).toBe(NO_TOKEN_CHALLENGES);
  expect(answer.headers.get('cache-control')).toBe('no-store');
  expect(answer.body.error_description).toMatch(/Authorization: Bearer/);
});

test('another authentication scheme counts as no token', async () => {
  const answer = await callBankApi(bankApi.url, '/transactions', {
    headers: { authorization: 'Basic dXNlcjpwYXNz' },
  });
  expect(answer.status).toBe(401);
  expect(answer.headers.get('www-authenticate')).toBe(NO_TOKEN_CHALLENGES);
});

test('a token in the query string is refused, even a good one, and even beside a good header', async () => {
  const { tokens } = await tokensFor('openid transactions:read');
  const inQuery = await callBankApi(bankApi.url, `/transactions?access_token=${tokens.access_token}`);
  expect(inQuery.status).toBe(400);
  expect(inQuery.body.error).toBe('invalid_request');
  expect(inQuery.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_request"/);
  expect(inQuery.body).not.toHaveProperty('transactions');

  const both = await callBankApi(bankApi.url, `/transactions?access_token=${tokens.access_token}`, {
    token: tokens.access_token,
  });
  expect(both.status).toBe(400);
});

test('a token in a form body is not read: the request has no token', async () => {
  const { tokens } = await tokensFor('openid accounts:read');
  const answer = await callBankApi(bankApi.url, '/payments', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ access_token: tokens.access_token }).toString(),
  });
  expect(answer.status).toBe(401);
  expect(answer.headers.get('www-authenticate')).toBe(NO_TOKEN_CHALLENGES);
});

test.each([
  ['garbage', 'not-a-real-token'],
  ['malformed', 'has spaces in it'],
  ['far too long', 'a'.repeat(2000)],
])('a %s token gets 401 invalid_token', async (_kind, token) => {
  const answer = await callBankApi(bankApi.url, '/transactions', {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(answer.status).toBe(401);
  expect(answer.body.error).toBe('invalid_token');
  expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
});

test('a revoked token gets 401 invalid_token at once: nothing is cached', async () => {
  const { app, tokens } = await tokensFor('openid transactions:read');
  expect((await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token })).status).toBe(200);

  const revoked = await fetch(`${passbook.issuer}/token/revocation`, {
    method: 'POST',
    headers: { authorization: basic(app), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: tokens.access_token }),
  });
  expect(revoked.status).toBe(200);

  const answer = await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token });
  expect(answer.status).toBe(401);
  expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
});

test('an expired token gets 401 invalid_token', async () => {
  const { tokens } = await tokensFor('openid transactions:read');
  // The storage's own expiry: a row past expires_at is no longer found.
  const expired = await passbook
    .knex('oidc_models')
    .where({ kind: 'AccessToken', id: tokens.access_token })
    .update({ expires_at: new Date(Date.now() - 1000) });
  expect(expired).toBe(1);
  const answer = await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token });
  expect(answer.status).toBe(401);
  expect(answer.body.error).toBe('invalid_token');
});

test('a refresh token is not an access token', async () => {
  const { tokens } = await tokensFor('openid offline_access transactions:read');
  expect(tokens.refresh_token).toBeDefined();
  const answer = await callBankApi(bankApi.url, '/transactions', { token: tokens.refresh_token });
  expect(answer.status).toBe(401);
  expect(answer.body.error).toBe('invalid_token');
});

test('a token without the route’s scope gets 403 insufficient_scope naming the scope', async () => {
  const { tokens } = await tokensFor('openid transactions:read');
  const answer = await callBankApi(bankApi.url, '/accounts', { token: tokens.access_token });
  expect(answer.status).toBe(403);
  expect(answer.body).toMatchObject({ error: 'insufficient_scope', scope: 'accounts:read' });
  expect(answer.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  expect(answer.headers.get('www-authenticate')).toContain('scope="accounts:read"');
});

test('no scope pays: a scoped token at POST /payments gets 403 payment_not_approved', async () => {
  const { tokens } = await tokensFor('openid accounts:read transactions:read');
  const answer = await callBankApi(bankApi.url, '/payments', {
    token: tokens.access_token,
    method: 'POST',
    json: {},
    headers: { 'idempotency-key': 'scoped' },
  });
  expect(answer.status).toBe(403);
  expect(answer.body.error).toBe('payment_not_approved');
});

test('the Bearer scheme name is case-insensitive', async () => {
  const { tokens } = await tokensFor('openid transactions:read');
  const answer = await callBankApi(bankApi.url, '/transactions', {
    headers: { authorization: `bearer ${tokens.access_token}` },
  });
  expect(answer.status).toBe(200);
});

test('a token stops working when the customer’s grant ends with the refresh token’s revocation', async () => {
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(
    passbook,
    app,
    customer,
    'openid offline_access transactions:read',
    new CustomerAgent([TEST_REDIRECT_URI]),
  );
  const revoked = await fetch(`${passbook.issuer}/token/revocation`, {
    method: 'POST',
    headers: { authorization: basic(app), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: String(tokens.refresh_token), token_type_hint: 'refresh_token' }),
  });
  expect(revoked.status).toBe(200);
  const answer = await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token });
  expect(answer.status).toBe(401);
});

test('unknown paths and wrong methods answer JSON, not HTML', async () => {
  const missing = await callBankApi(bankApi.url, '/nothing-here');
  expect(missing.status).toBe(404);
  expect(missing.body.error).toBe('not_found');
  const wrongMethod = await callBankApi(bankApi.url, '/accounts', { method: 'DELETE' });
  expect(wrongMethod.status).toBe(405);
  expect(wrongMethod.body.error).toBe('method_not_allowed');
});
