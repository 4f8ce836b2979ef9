import * as oidc from 'openid-client';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import { registerBankApiClient } from '../support/bank-api.ts';
import { CustomerAgent } from '../support/customer-agent.ts';
import { dpopHandle, dpopProof, newDpopKey, type DpopKey } from '../support/dpop.ts';
import { pushedAuthorizationRequest } from '../support/fapi-app.ts';
import {
  TEST_REDIRECT_URI,
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, customerAllows, discoverAs } from '../support/third-party-app.ts';

/**
 * DPoP (RFC 9449) at Passbook, as an app uses it through openid-client: tokens bound to the app's
 * key, Passbook's nonces (§8) fetched and retried by the library, the binding visible to the bank
 * API through introspection (§6.2) and kept across refreshes (§5), and apps that send no proof
 * served Bearer tokens exactly as before.
 */

const passbook = useTestPassbook();
let bankApi: RegisteredClient;

beforeAll(async () => {
  bankApi = await registerBankApiClient(passbook);
});

interface Recorded {
  url: string;
  status: number;
  nonce: string | null;
  body: Record<string, unknown>;
}

/** The app's configuration, keeping a copy of every answer Passbook's token endpoint gives it. */
async function appWithRecorder(app: RegisteredClient) {
  const config = await discoverAs(passbook, app);
  const tokenAnswers: Recorded[] = [];
  config[oidc.customFetch] = async (url, options) => {
    const response = await fetch(url, options);
    if (url.endsWith('/token')) {
      const text = await response.clone().text();
      tokenAnswers.push({
        url,
        status: response.status,
        nonce: response.headers.get('dpop-nonce'),
        body: (text ? JSON.parse(text) : {}) as Record<string, unknown>,
      });
    }
    return response;
  };
  return { config, tokenAnswers };
}

async function signInWithDpop(config: oidc.Configuration, key: DpopKey | undefined, scope: string) {
  const customer = await createTestCustomer(passbook.knex);
  const request = await authorizationRequest(config, scope);
  const callback = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  const tokens = await oidc.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
    undefined,
    key ? { DPoP: dpopHandle(config, key) } : {},
  );
  return { customer, tokens };
}

async function introspect(token: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${passbook.issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basicAuthorization(bankApi),
    },
    body: new URLSearchParams({ token }),
  });
  return (await response.json()) as Record<string, unknown>;
}

test('an app that sends DPoP proofs gets a DPoP token bound to its key, after one round for a nonce', async () => {
  const app = await registerTestApp(passbook);
  const { config, tokenAnswers } = await appWithRecorder(app);
  const key = await newDpopKey();
  const { tokens } = await signInWithDpop(config, key, 'openid transactions:read');

  expect(tokens.token_type.toLowerCase()).toBe('dpop');
  const [first, second] = tokenAnswers;
  expect(tokenAnswers).toHaveLength(2);
  expect(first).toMatchObject({ status: 400, body: { error: 'use_dpop_nonce' } });
  expect(first?.nonce).toMatch(/^[\w-]{43}$/);
  expect(second?.status).toBe(200);

  expect(await introspect(tokens.access_token)).toMatchObject({
    active: true,
    token_type: 'DPoP',
    cnf: { jkt: key.thumbprint },
  });
});

test('UserInfo answers a DPoP token with its proof, and refuses it as a Bearer token', async () => {
  const app = await registerTestApp(passbook);
  const { config } = await appWithRecorder(app);
  const key = await newDpopKey('EdDSA');
  const { customer, tokens } = await signInWithDpop(config, key, 'openid profile');
  const dpop = dpopHandle(config, key);

  const claims = await oidc.fetchUserInfo(config, tokens.access_token, customer.id, { DPoP: dpop });
  expect(claims.name).toBe(customer.name);

  const asBearer = await fetch(`${passbook.issuer}/me`, {
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  expect(asBearer.status).toBe(401);
  expect(asBearer.headers.get('www-authenticate')).toMatch(/^DPoP /);
});

test('a refresh with the same key keeps the binding', async () => {
  const app = await registerTestApp(passbook);
  const { config } = await appWithRecorder(app);
  const key = await newDpopKey('PS256');
  const { tokens } = await signInWithDpop(config, key, 'openid offline_access transactions:read');
  const refreshed = await oidc.refreshTokenGrant(config, String(tokens.refresh_token), undefined, {
    DPoP: dpopHandle(config, key),
  });
  expect(refreshed.token_type.toLowerCase()).toBe('dpop');
  expect(await introspect(refreshed.access_token)).toMatchObject({
    active: true,
    cnf: { jkt: key.thumbprint },
  });
});

test('a public app’s refresh token is bound too: refreshing with another key or none is refused', async () => {
  const app = await registerTestApp(passbook, { name: 'Phone App', isPublic: true });
  const { config } = await appWithRecorder(app);
  const key = await newDpopKey();
  const { tokens } = await signInWithDpop(config, key, 'openid offline_access transactions:read');
  const refreshToken = String(tokens.refresh_token);
  expect(await introspect(refreshToken)).toMatchObject({ active: true, cnf: { jkt: key.thumbprint } });

  const other = await newDpopKey();
  await expect(
    oidc.refreshTokenGrant(config, refreshToken, undefined, { DPoP: dpopHandle(config, other) }),
  ).rejects.toMatchObject({ error: 'invalid_grant' });
  await expect(oidc.refreshTokenGrant(config, refreshToken)).rejects.toMatchObject({
    error: 'invalid_grant',
  });

  const refreshed = await oidc.refreshTokenGrant(config, refreshToken, undefined, {
    DPoP: dpopHandle(config, key),
  });
  expect(await introspect(refreshed.access_token)).toMatchObject({ cnf: { jkt: key.thumbprint } });
});

test('an app that sends no DPoP proof gets Bearer tokens exactly as before, in one round', async () => {
  const app = await registerTestApp(passbook);
  const { config, tokenAnswers } = await appWithRecorder(app);
  const { tokens } = await signInWithDpop(config, undefined, 'openid offline_access transactions:read');

  expect(tokens.token_type.toLowerCase()).toBe('bearer');
  expect(tokenAnswers.map((answer) => answer.status)).toEqual([200]);
  expect(tokenAnswers[0]?.nonce).toBeNull();
  const introspection = await introspect(tokens.access_token);
  expect(introspection).toMatchObject({ active: true, token_type: 'Bearer' });
  expect(introspection).not.toHaveProperty('cnf');

  const refreshed = await oidc.refreshTokenGrant(config, String(tokens.refresh_token));
  expect(refreshed.token_type.toLowerCase()).toBe('bearer');
});

test('a nonce one node handed out is good at another that shares the data encryption key', async () => {
  const other = await startTestPassbook();
  try {
    const app = await registerTestApp(passbook);
    const { config, tokenAnswers } = await appWithRecorder(app);
    const key = await newDpopKey();
    const { tokens } = await signInWithDpop(config, key, 'openid offline_access');
    const nonce = tokenAnswers.at(-1)?.nonce ?? tokenAnswers[0]?.nonce;
    expect(nonce).toEqual(expect.any(String));

    const proof = await dpopProof(key, { htm: 'POST', htu: `${other.issuer}/token`, nonce: String(nonce) });
    const response = await fetch(`${other.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basicAuthorization(app),
        dpop: proof,
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: String(tokens.refresh_token) }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { token_type: string }).token_type).toBe('DPoP');
  } finally {
    await other.close();
  }
});

test('a confidential app’s refresh token is bound to its client authentication, not to the key (RFC 9449 §5)', async () => {
  const app = await registerTestApp(passbook);
  const { config } = await appWithRecorder(app);
  const key = await newDpopKey();
  const { tokens } = await signInWithDpop(config, key, 'openid offline_access transactions:read');
  expect(await introspect(String(tokens.refresh_token))).not.toHaveProperty('cnf');

  // The app may move to a new key at a refresh; the new access token is bound to that one.
  const newKey = await newDpopKey();
  const moved = await oidc.refreshTokenGrant(config, String(tokens.refresh_token), undefined, {
    DPoP: dpopHandle(config, newKey),
  });
  expect(await introspect(moved.access_token)).toMatchObject({ cnf: { jkt: newKey.thumbprint } });
});

/** A request pushed with a proof from `key`, allowed by a customer: redeem its code with a key. */
async function pushedWithProof(config: oidc.Configuration, key: DpopKey) {
  const customer = await createTestCustomer(passbook.knex);
  const request = await pushedAuthorizationRequest(config, key);
  const callback = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  return (redeemWith: DpopKey) =>
    oidc.authorizationCodeGrant(
      config,
      new URL(callback),
      { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
      undefined,
      { DPoP: dpopHandle(config, redeemWith) },
    );
}

test('a request pushed with a DPoP proof binds the code to that key (dpop_jkt)', async () => {
  const app = await registerTestApp(passbook);
  const { config } = await appWithRecorder(app);
  const key = await newDpopKey();

  const redeemed = await (await pushedWithProof(config, key))(key);
  expect(await introspect(redeemed.access_token)).toMatchObject({ cnf: { jkt: key.thumbprint } });

  // Another key is refused, and the code is spent: a thief's attempt leaves nothing to retry.
  const redeem = await pushedWithProof(config, key);
  await expect(redeem(await newDpopKey())).rejects.toMatchObject({ error: 'invalid_grant' });
  await expect(redeem(key)).rejects.toMatchObject({ error: 'invalid_grant' });
});
