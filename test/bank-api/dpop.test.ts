import * as oidc from 'openid-client';
import { exportJWK, generateKeyPair } from 'jose';
import { callBankApi, startTestBankApi, type ApiAnswer, type TestBankApi } from '../support/bank-api.ts';
import { CustomerAgent } from '../support/customer-agent.ts';
import { dpopHandle, dpopProof, newDpopKey, type DpopKey, type ProofClaims } from '../support/dpop.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import {
  authorizationRequest,
  completeFlow,
  customerAllows,
  discoverAs,
} from '../support/third-party-app.ts';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { recordProof } from '../../src/bank-api/dpop.ts';

/**
 * DPoP (RFC 9449 §4.3, §7) at the bank API: a token bound to an app's key opens the API only with
 * a proof from that key, for this request and this token, used once; it is never taken as Bearer.
 * Bearer tokens work exactly as before.
 */

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

/** BANK_API_URL, as apps call the API and as proofs must name it. */
function apiUrl(path: string): string {
  return `${passbook.bankApiUrl}${path}`;
}

interface BoundSession {
  config: oidc.Configuration;
  key: DpopKey;
  accessToken: string;
}

async function dpopBoundSession(scope = 'openid accounts:read transactions:read'): Promise<BoundSession> {
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const key = await newDpopKey();
  const request = await authorizationRequest(config, scope);
  const callback = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  const tokens = await oidc.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
    undefined,
    { DPoP: dpopHandle(config, key) },
  );
  expect(tokens.token_type.toLowerCase()).toBe('dpop');
  return { config, key, accessToken: tokens.access_token };
}

/** A request with `Authorization: DPoP` and the proofs given (none, one or several DPoP headers). */
async function withProofs(session: BoundSession, path: string, proofs: string[], method = 'GET') {
  const headers = new Headers({ accept: 'application/json', authorization: `DPoP ${session.accessToken}` });
  for (const proof of proofs) headers.append('dpop', proof);
  const response = await fetch(apiUrl(path), { method, headers });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: (text ? JSON.parse(text) : {}) as Record<string, unknown>,
  } satisfies ApiAnswer;
}

function proofClaims(session: BoundSession, extra: Partial<ProofClaims> = {}): ProofClaims {
  return { htm: 'GET', htu: apiUrl('/accounts'), accessToken: session.accessToken, ...extra };
}

function expectInvalidProof(answer: ApiAnswer): void {
  expect(answer.status).toBe(401);
  expect(answer.body.error).toBe('invalid_dpop_proof');
  expect(answer.headers.get('www-authenticate')).toMatch(
    /^DPoP error="invalid_dpop_proof", error_description="[^"]+", algs="ES256 PS256 EdDSA"$/,
  );
}

test('an app reads accounts with its DPoP-bound token through a real client library', async () => {
  const session = await dpopBoundSession();
  const response = await oidc.fetchProtectedResource(
    session.config,
    session.accessToken,
    new URL(apiUrl('/accounts')),
    'GET',
    undefined,
    undefined,
    { DPoP: dpopHandle(session.config, session.key) },
  );
  expect(response.status).toBe(200);
  const body = (await response.json()) as { accounts: unknown[] };
  expect(body.accounts.length).toBeGreaterThan(0);

  // A query string is no part of what a proof names (htu).
  const transactions = await oidc.fetchProtectedResource(
    session.config,
    session.accessToken,
    new URL(apiUrl('/transactions?limit=2')),
    'GET',
    undefined,
    undefined,
    { DPoP: dpopHandle(session.config, session.key) },
  );
  expect(transactions.status).toBe(200);
});

test('the DPoP scheme is read regardless of case', async () => {
  const session = await dpopBoundSession();
  const answer = await callBankApi(bankApi.url, '/accounts', {
    headers: {
      authorization: `dpop ${session.accessToken}`,
      dpop: await dpopProof(session.key, proofClaims(session)),
    },
  });
  expect(answer.status).toBe(200);
});

test('a bound token sent as Bearer is refused, with or without a proof beside it', async () => {
  const session = await dpopBoundSession();
  const asBearer = await callBankApi(bankApi.url, '/accounts', { token: session.accessToken });
  expect(asBearer.status).toBe(401);
  expect(asBearer.body.error).toBe('invalid_token');
  expect(asBearer.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);

  const withProof = await callBankApi(bankApi.url, '/accounts', {
    token: session.accessToken,
    headers: { dpop: await dpopProof(session.key, proofClaims(session)) },
  });
  expect(withProof.status).toBe(401);
  expect(withProof.body.error).toBe('invalid_token');
});

test('a DPoP token needs exactly one proof', async () => {
  const session = await dpopBoundSession();
  expectInvalidProof(await withProofs(session, '/accounts', []));
  const [one, two] = await Promise.all([1, 2].map(() => dpopProof(session.key, proofClaims(session))));
  expectInvalidProof(await withProofs(session, '/accounts', [String(one), String(two)]));
});

test.each<[string, () => Partial<ProofClaims>]>([
  ['another URL', () => ({ htu: 'https://elsewhere.example/accounts' })],
  ['another path of the API', () => ({ htu: apiUrl('/transactions') })],
  ['another method', () => ({ htm: 'POST' })],
  ['another access token (ath)', () => ({ accessToken: 'some-other-token' })],
  ['a stale iat', () => ({ iat: Math.floor(Date.now() / 1000) - 120 })],
  ['an iat in the future', () => ({ iat: Math.floor(Date.now() / 1000) + 120 })],
])('a proof for %s is refused as invalid_dpop_proof', async (_what, extra) => {
  const session = await dpopBoundSession();
  const proof = await dpopProof(session.key, proofClaims(session, extra()));
  expectInvalidProof(await withProofs(session, '/accounts', [proof]));
});

test.each([-50, 50])('a proof whose iat is %i seconds off the clock still passes', async (offset) => {
  const session = await dpopBoundSession();
  const iat = Math.floor(Date.now() / 1000) + offset;
  const answer = await withProofs(session, '/accounts', [
    await dpopProof(session.key, proofClaims(session, { iat })),
  ]);
  expect(answer.status).toBe(200);
});

test('a proof with an algorithm not offered or a broken signature is refused as invalid_dpop_proof', async () => {
  const session = await dpopBoundSession();
  const rsa = await newDpopKey('RS256');
  expectInvalidProof(
    await withProofs(session, '/accounts', [await dpopProof(rsa, proofClaims(session, { alg: 'RS256' }))]),
  );
  const proof = await dpopProof(session.key, proofClaims(session));
  const tampered = `${proof.slice(0, -4)}${proof.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
  expectInvalidProof(await withProofs(session, '/accounts', [tampered]));
});

test('a proof that carries the private key is refused as invalid_dpop_proof', async () => {
  const session = await dpopBoundSession();
  const keyPair = await generateKeyPair('ES256', { extractable: true });
  const leaky = { ...session.key, keyPair, publicJwk: await exportJWK(keyPair.privateKey) };
  expectInvalidProof(await withProofs(session, '/accounts', [await dpopProof(leaky, proofClaims(session))]));
});

test('a proof signed by another key than the token’s is refused', async () => {
  const session = await dpopBoundSession();
  const other = await newDpopKey();
  const answer = await withProofs(session, '/accounts', [await dpopProof(other, proofClaims(session))]);
  expect(answer.status).toBe(401);
  expect(answer.body.error).toBe('invalid_token');
  expect(answer.headers.get('www-authenticate')).toMatch(
    /^DPoP error="invalid_token".*algs="ES256 PS256 EdDSA"$/,
  );
});

test('a replayed proof is refused, and of simultaneous copies exactly one passes', async () => {
  const session = await dpopBoundSession();
  const proof = await dpopProof(session.key, proofClaims(session));
  expect((await withProofs(session, '/accounts', [proof])).status).toBe(200);
  expectInvalidProof(await withProofs(session, '/accounts', [proof]));

  const copied = await dpopProof(session.key, proofClaims(session));
  const answers = await Promise.all([1, 2, 3, 4].map(() => withProofs(session, '/accounts', [copied])));
  expect(answers.filter((answer) => answer.status === 200)).toHaveLength(1);
  for (const refused of answers.filter((answer) => answer.status !== 200)) expectInvalidProof(refused);
});

test('a missing scope is answered in the DPoP scheme', async () => {
  const session = await dpopBoundSession('openid accounts:read');
  const answer = await withProofs(session, '/transactions', [
    await dpopProof(session.key, proofClaims(session, { htu: apiUrl('/transactions') })),
  ]);
  expect(answer.status).toBe(403);
  expect(answer.headers.get('www-authenticate')).toMatch(/^DPoP error="insufficient_scope"/);
});

test('a Bearer token is refused with the DPoP scheme, and works as Bearer exactly as before', async () => {
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, customer, 'openid accounts:read');
  const key = await newDpopKey();
  const asDpop = await callBankApi(bankApi.url, '/accounts', {
    headers: {
      authorization: `DPoP ${tokens.access_token}`,
      dpop: await dpopProof(key, { htm: 'GET', htu: apiUrl('/accounts'), accessToken: tokens.access_token }),
    },
  });
  expect(asDpop.status).toBe(401);
  expect(asDpop.body.error).toBe('invalid_token');

  const asBearer = await callBankApi(bankApi.url, '/accounts', { token: tokens.access_token });
  expect(asBearer.status).toBe(200);
});

test('a request without a token is offered both schemes', async () => {
  const answer = await callBankApi(bankApi.url, '/accounts');
  expect(answer.status).toBe(401);
  expect(answer.headers.get('www-authenticate')).toBe('Bearer, DPoP algs="ES256 PS256 EdDSA"');
});

test('expired proof records are cleared as new proofs are recorded', async () => {
  const jkt = `purge-test-${Date.now()}`;
  const longAgo = Math.floor(Date.now() / 1000) - 3600;
  for (let index = 0; index < 5; index += 1) {
    expect(await recordProof(bankApi.knex, { jkt, jti: `old-${index}`, iat: longAgo })).toBe(true);
  }
  const now = Math.floor(Date.now() / 1000);
  expect(await recordProof(bankApi.knex, { jkt, jti: 'old-0', iat: now })).toBe(true);
  expect(await recordProof(bankApi.knex, { jkt, jti: 'old-0', iat: now })).toBe(false);
  const left = await bankApi.knex('bank.dpop_proofs').where({ jkt }).pluck('jti');
  expect(left).toEqual(['old-0']);
});
