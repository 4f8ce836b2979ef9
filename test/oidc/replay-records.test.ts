import { randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, customerAllows, exchangeCode } from '../support/third-party-app.ts';
import { CustomerAgent } from '../support/customer-agent.ts';

/**
 * A client assertion (private_key_jwt) is accepted once: replayed later, or sent as several
 * simultaneous copies, all but one are refused with the engine's answer to a replay.
 */

let passbook: TestPassbook;
let app: RegisteredClient;
let privateKey: CryptoKey;

beforeAll(async () => {
  passbook = await startTestPassbook();
  const keys = await generateKeyPair('ES256');
  privateKey = keys.privateKey;
  const jwk = await exportJWK(keys.publicKey);
  app = await registerTestApp(passbook, {
    name: 'Signed Assertions',
    jwks: { keys: [{ ...jwk, alg: 'ES256' }] },
  });
});

afterAll(async () => {
  await passbook.close();
});

function clientAssertion(): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer(app.client_id)
    .setSubject(app.client_id)
    .setAudience(passbook.issuer)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('1m')
    .sign(privateKey);
}

async function introspectWith(assertion: string) {
  const response = await fetch(`${passbook.issuer}/token/introspection`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      token: 'not-a-token',
      client_id: app.client_id,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const REPLAY = { error: 'invalid_client', error_description: 'client authentication failed' };

test('an app signs in with its key through a real client library, a new assertion each request', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const config = await oidc.discovery(
    new URL(passbook.issuer),
    app.client_id,
    {},
    oidc.PrivateKeyJwt(privateKey),
    { execute: [oidc.allowInsecureRequests] },
  );
  const request = await authorizationRequest(config, 'openid offline_access');
  const callbackUrl = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  const tokens = await exchangeCode(config, callbackUrl, request);
  expect(tokens.token_type).toBe('bearer');
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token ?? '');
  expect(refreshed.access_token).toEqual(expect.any(String));
});

test('an assertion replayed after it was accepted is refused as invalid_client', async () => {
  const assertion = await clientAssertion();
  expect(await introspectWith(assertion)).toEqual({ status: 200, body: { active: false } });
  expect(await introspectWith(assertion)).toEqual({ status: 401, body: REPLAY });
});

test('of simultaneous copies of one assertion exactly one is accepted, the others get invalid_client', async () => {
  for (let round = 0; round < 3; round += 1) {
    const assertion = await clientAssertion();
    const answers = await Promise.all(Array.from({ length: 4 }, () => introspectWith(assertion)));
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(1);
    expect(answers.filter((answer) => answer.status !== 200)).toEqual(
      Array.from({ length: 3 }, () => ({ status: 401, body: REPLAY })),
    );
  }
});
