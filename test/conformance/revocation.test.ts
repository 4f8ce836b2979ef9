import { registerBankApiClient } from '../support/bank-api.ts';
import * as oidc from 'openid-client';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import {
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow, discoverAs } from '../support/third-party-app.ts';

/** Checklist K35-K36: token revocation (RFC 7009). */

let passbook: TestPassbook;
let bankApi: RegisteredClient;

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await registerBankApiClient(passbook);
});

afterAll(async () => {
  await passbook.close();
});

const OFFLINE = 'openid profile offline_access transactions:read';

interface Signed {
  customer: TestCustomer;
  app: RegisteredClient;
  config: oidc.Configuration;
  accessToken: string;
  refreshToken: string;
}

/** A new customer who has just connected a new app with offline access. */
async function connectedApp(overrides: { isPublic?: boolean; name?: string } = {}): Promise<Signed> {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook, overrides);
  const { config, tokens } = await completeFlow(passbook, app, customer, OFFLINE);
  if (!tokens.refresh_token) throw new Error('no refresh token was issued');
  return { customer, app, config, accessToken: tokens.access_token, refreshToken: tokens.refresh_token };
}

interface RevocationOutcome {
  status: number;
  error?: string;
}

/** The app revokes a token through openid-client, as an app would; returns the endpoint's answer. */
async function revokeAs(
  config: oidc.Configuration,
  token: string,
  hint?: 'access_token' | 'refresh_token',
): Promise<RevocationOutcome> {
  let status = 0;
  config[oidc.customFetch] = async (url, options) => {
    const response = await fetch(url, options);
    status = response.status;
    return response;
  };
  try {
    await oidc.tokenRevocation(config, token, hint ? { token_type_hint: hint } : undefined);
    return { status };
  } catch (caught) {
    if (caught instanceof oidc.ResponseBodyError) return { status: caught.status, error: caught.error };
    throw caught;
  }
}

/** A revocation request the library would not send: the form fields and headers exactly as given. */
async function rawRevocation(form: Record<string, string>, headers: Record<string, string> = {}) {
  const response = await fetch(`${passbook.issuer}/token/revocation`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as { error?: string }) : {} };
}

function basic(client: RegisteredClient, secret = client.client_secret ?? ''): string {
  return basicAuthorization({ client_id: client.client_id, client_secret: secret });
}

async function userinfoStatus(signed: Signed, accessToken = signed.accessToken): Promise<number> {
  try {
    await oidc.fetchUserInfo(signed.config, accessToken, signed.customer.id);
    return 200;
  } catch (caught) {
    if (caught instanceof oidc.WWWAuthenticateChallengeError) return caught.status;
    throw caught;
  }
}

/** What the bank's API learns about a token by introspection. */
async function introspect(token: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${passbook.issuer}/token/introspection`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(bankApi) },
    body: new URLSearchParams({ token }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

/** 'ok' with the new tokens, or the token endpoint's error code. */
async function refresh(signed: Signed, refreshToken = signed.refreshToken) {
  try {
    const tokens = await oidc.refreshTokenGrant(signed.config, refreshToken);
    return { outcome: 'ok' as const, tokens };
  } catch (caught) {
    if (caught instanceof oidc.ResponseBodyError) {
      return { outcome: caught.error, status: caught.status, tokens: undefined };
    }
    throw caught;
  }
}

async function grantRows(signed: Signed): Promise<number> {
  const rows = await passbook
    .knex('oidc_models')
    .where({ kind: 'Grant', customer_id: signed.customer.id, client_id: signed.app.client_id });
  return rows.length;
}

/** The token works everywhere it should: UserInfo and introspection by the bank's API. */
async function expectAccessTokenLive(signed: Signed, accessToken = signed.accessToken): Promise<void> {
  expect(await userinfoStatus(signed, accessToken)).toBe(200);
  expect(await introspect(accessToken)).toMatchObject({ active: true, client_id: signed.app.client_id });
}

async function expectAccessTokenDead(signed: Signed, accessToken = signed.accessToken): Promise<void> {
  expect(await userinfoStatus(signed, accessToken)).toBe(401);
  expect(await introspect(accessToken)).toEqual({ active: false });
}

const HINTS: [string, 'access_token' | 'refresh_token' | undefined][] = [
  ['without a hint', undefined],
  ['with token_type_hint=access_token', 'access_token'],
  ['with token_type_hint=refresh_token', 'refresh_token'],
];

describe('K35: revoking an access token', () => {
  test.each(HINTS)('%s answers 200 and the token stops working', async (_name, hint) => {
    const signed = await connectedApp();
    await expectAccessTokenLive(signed);

    expect(await revokeAs(signed.config, signed.accessToken, hint)).toEqual({ status: 200 });

    await expectAccessTokenDead(signed);
  });

  // RFC 7009 §2.1 lets the server end the refresh token too; Passbook does, but keeps the consent.
  test('ends every token of the grant, the refresh token included, but keeps the consent (revokeGrantPolicy)', async () => {
    const signed = await connectedApp();
    expect(await grantRows(signed)).toBe(1);
    expect(await introspect(signed.refreshToken)).toMatchObject({ active: true });

    expect(await revokeAs(signed.config, signed.accessToken, 'access_token')).toEqual({ status: 200 });
    await expectAccessTokenDead(signed);
    expect(await refresh(signed)).toMatchObject({ outcome: 'invalid_grant', status: 400 });
    expect(await introspect(signed.refreshToken)).toEqual({ active: false });

    expect(await grantRows(signed)).toBe(1);
  });
});

describe('K35: revoking a refresh token', () => {
  test.each(HINTS)('%s answers 200 and ends the grant with all its tokens', async (_name, hint) => {
    const signed = await connectedApp();
    // A second generation: the grant now has two access tokens and a rotated refresh token.
    const rotated = await refresh(signed);
    if (!rotated.tokens?.refresh_token) throw new Error(`refresh failed: ${rotated.outcome}`);
    const newest = {
      ...signed,
      accessToken: rotated.tokens.access_token,
      refreshToken: rotated.tokens.refresh_token,
    };
    await expectAccessTokenLive(signed);
    await expectAccessTokenLive(newest);
    expect(await introspect(newest.refreshToken)).toMatchObject({ active: true });
    expect(await grantRows(signed)).toBe(1);

    expect(await revokeAs(signed.config, newest.refreshToken, hint)).toEqual({ status: 200 });

    expect(await refresh(newest)).toMatchObject({ outcome: 'invalid_grant', status: 400 });
    expect(await introspect(newest.refreshToken)).toEqual({ active: false });
    await expectAccessTokenDead(newest);
    await expectAccessTokenDead(signed);
    expect(await grantRows(signed)).toBe(0);
  });
});

describe('K36: what revocation refuses, and what it shrugs off', () => {
  test.each(HINTS)('a token the bank never issued answers 200 (%s)', async (_name, hint) => {
    const signed = await connectedApp();
    expect(await revokeAs(signed.config, 'not-a-token-the-bank-issued', hint)).toEqual({ status: 200 });
    await expectAccessTokenLive(signed);
  });

  test('a request without a token is 400 invalid_request', async () => {
    const signed = await connectedApp();
    const answer = await rawRevocation(
      { token_type_hint: 'access_token' },
      { authorization: basic(signed.app) },
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_request');
    await expectAccessTokenLive(signed);
  });

  test('another app’s access token is refused with 400 invalid_request and stays valid', async () => {
    const victim = await connectedApp({ name: 'Victim App' });
    const intruder = await registerTestApp(passbook, { name: 'Intruder App' });
    const intruderConfig = await discoverAs(passbook, intruder);

    const answer = await revokeAs(intruderConfig, victim.accessToken);

    expect(answer).toEqual({ status: 400, error: 'invalid_request' });
    await expectAccessTokenLive(victim);
    // The token was revocable all along, by its own app.
    expect(await revokeAs(victim.config, victim.accessToken)).toEqual({ status: 200 });
    await expectAccessTokenDead(victim);
  });

  test('another app’s refresh token is refused with 400 invalid_request and still refreshes', async () => {
    const victim = await connectedApp({ name: 'Victim App' });
    const intruder = await registerTestApp(passbook, { name: 'Intruder App' });
    const intruderConfig = await discoverAs(passbook, intruder);

    const answer = await revokeAs(intruderConfig, victim.refreshToken, 'refresh_token');

    expect(answer).toEqual({ status: 400, error: 'invalid_request' });
    expect(await grantRows(victim)).toBe(1);
    await expectAccessTokenLive(victim);
    expect((await refresh(victim)).outcome).toBe('ok');
  });

  test('a public app cannot revoke another app’s token', async () => {
    const victim = await connectedApp({ name: 'Victim App' });
    const intruder = await registerTestApp(passbook, { name: 'Public Intruder', isPublic: true });
    const intruderConfig = await discoverAs(passbook, intruder);

    const answer = await revokeAs(intruderConfig, victim.accessToken);

    expect([200, 400]).toContain(answer.status);
    await expectAccessTokenLive(victim);
  });

  test('a public app revokes its own refresh token with its client_id alone', async () => {
    const signed = await connectedApp({ name: 'Phone App', isPublic: true });
    expect(signed.app.client_secret).toBeUndefined();
    await expectAccessTokenLive(signed);
    const sent: { authorization: string | null; body: string }[] = [];
    signed.config[oidc.customFetch] = async (url, options) => {
      sent.push({
        authorization: new Headers(options.headers).get('authorization'),
        body: options.body instanceof URLSearchParams ? options.body.toString() : '',
      });
      return fetch(url, options);
    };

    await oidc.tokenRevocation(signed.config, signed.refreshToken);

    expect(sent).toHaveLength(1);
    expect(sent[0]?.authorization).toBeNull();
    const form = new URLSearchParams(sent[0]?.body);
    expect(form.get('client_id')).toBe(signed.app.client_id);
    expect(form.has('client_secret')).toBe(false);
    expect(await refresh(signed)).toMatchObject({ outcome: 'invalid_grant', status: 400 });
    await expectAccessTokenDead(signed);
  });

  test('a public app revokes its own access token', async () => {
    const signed = await connectedApp({ name: 'Phone App', isPublic: true });
    await expectAccessTokenLive(signed);
    expect(await revokeAs(signed.config, signed.accessToken)).toEqual({ status: 200 });
    await expectAccessTokenDead(signed);
  });

  test('without client authentication nothing is revoked', async () => {
    const signed = await connectedApp();

    const anonymous = await rawRevocation({ token: signed.accessToken });
    expect([400, 401]).toContain(anonymous.status);
    expect(['invalid_request', 'invalid_client']).toContain(anonymous.body.error);

    const anonymousRefresh = await rawRevocation({
      token: signed.refreshToken,
      token_type_hint: 'refresh_token',
    });
    expect([400, 401]).toContain(anonymousRefresh.status);

    await expectAccessTokenLive(signed);
    expect(await grantRows(signed)).toBe(1);
    expect((await refresh(signed)).outcome).toBe('ok');
  });

  test('with a wrong client secret the answer is 401 invalid_client and nothing is revoked', async () => {
    const signed = await connectedApp();

    const answer = await rawRevocation(
      { token: signed.refreshToken },
      { authorization: basic(signed.app, 'not-the-secret') },
    );

    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
    await expectAccessTokenLive(signed);
    expect((await refresh(signed)).outcome).toBe('ok');
  });

  test('a confidential app that leaves out its secret and sends only client_id is refused', async () => {
    const signed = await connectedApp();

    const answer = await rawRevocation({ token: signed.accessToken, client_id: signed.app.client_id });

    expect([400, 401]).toContain(answer.status);
    expect(answer.body.error).toBe('invalid_client');
    await expectAccessTokenLive(signed);
  });
});
