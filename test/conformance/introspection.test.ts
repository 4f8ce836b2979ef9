import { registerBankApiClient } from '../support/bank-api.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import {
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

/** Checklist L37-L39: token introspection (RFC 7662). */

let passbook: TestPassbook;
let customer: TestCustomer;
let bankApi: RegisteredClient;

beforeAll(async () => {
  passbook = await startTestPassbook();
  customer = await createTestCustomer(passbook.knex);
  bankApi = await registerBankApiClient(passbook);
});

afterAll(async () => {
  await passbook.close();
});

interface IntrospectionBody {
  active?: boolean;
  error?: string;
  exp?: number;
  iat?: number;
  [member: string]: unknown;
}

async function introspect(caller: RegisteredClient | undefined, token: string) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (caller?.client_secret) {
    headers.authorization = basicAuthorization(caller);
  }
  const body = new URLSearchParams({ token });
  if (caller && !caller.client_secret) body.set('client_id', caller.client_id);
  const response = await fetch(`${passbook.issuer}/token/introspection`, { method: 'POST', headers, body });
  return {
    status: response.status,
    cacheControl: response.headers.get('cache-control'),
    body: (await response.json()) as IntrospectionBody,
  };
}

test('the bank API learns who a live token belongs to, which app holds it and what it may do', async () => {
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, customer, 'openid transactions:read');
  const { status, cacheControl, body } = await introspect(bankApi, tokens.access_token);
  expect(status).toBe(200);
  expect(cacheControl).toBe('no-store');
  expect(body).toMatchObject({
    active: true,
    client_id: app.client_id,
    sub: customer.id,
    scope: 'openid transactions:read',
    token_type: 'Bearer',
  });
  expect(body.exp).toBeGreaterThan(body.iat ?? Infinity);
});

test('an app may introspect its own token but learns nothing about another app’s', async () => {
  const app = await registerTestApp(passbook);
  const other = await registerTestApp(passbook, { name: 'Other App' });
  const { tokens } = await completeFlow(passbook, app, customer, 'openid transactions:read');
  expect((await introspect(app, tokens.access_token)).body.active).toBe(true);
  expect((await introspect(other, tokens.access_token)).body).toEqual({ active: false });
});

test('garbage and revoked tokens are exactly {"active":false}', async () => {
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, customer, 'openid offline_access transactions:read');
  expect((await introspect(bankApi, 'not-a-token')).body).toEqual({ active: false });

  const revoke = await fetch(`${passbook.issuer}/token/revocation`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basicAuthorization(app),
    },
    body: new URLSearchParams({ token: tokens.access_token }),
  });
  expect(revoke.status).toBe(200);
  expect((await introspect(bankApi, tokens.access_token)).body).toEqual({ active: false });
});

test('introspection needs an authenticated client: none, a public client or a wrong secret is refused', async () => {
  const app = await registerTestApp(passbook);
  const publicApp = await registerTestApp(passbook, { name: 'Public App', isPublic: true });
  const { tokens } = await completeFlow(passbook, app, customer, 'openid transactions:read');

  const anonymous = await introspect(undefined, tokens.access_token);
  expect(anonymous.status).toBe(400);
  expect(anonymous.body.error).toBe('invalid_request');

  expect((await introspect(publicApp, tokens.access_token)).body).toEqual({ active: false });

  const wrongSecret = await introspect({ ...bankApi, client_secret: 'wrong' }, tokens.access_token);
  expect(wrongSecret.status).toBe(401);
  expect(wrongSecret.body.error).toBe('invalid_client');
});

test('a resource server cannot send customers through the authorization endpoint', async () => {
  const params = new URLSearchParams({
    client_id: bankApi.client_id,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: 'https://app.example/callback',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  });
  const response = await fetch(`${passbook.issuer}/auth?${params.toString()}`, { redirect: 'manual' });
  expect(response.status).toBe(400);
  expect(response.headers.get('location')).toBeNull();
});
