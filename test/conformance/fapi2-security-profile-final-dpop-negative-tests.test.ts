import * as oidc from 'openid-client';
import { CustomerAgent } from '../support/customer-agent.ts';
import { dpopHandle, dpopProof, newDpopKey, type DpopKey, type ProofClaims } from '../support/dpop.ts';
import {
  TEST_REDIRECT_URI,
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, customerAllows, discoverAs } from '../support/third-party-app.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';

/**
 * The conformance suite's DPoP negative tests, at Passbook's token and UserInfo endpoints: proofs
 * that are stale, replayed (one after the other, or several copies at once), meant for another URL
 * or method, or signed with an algorithm Passbook does not offer, are all refused in RFC 9449's
 * terms, and never with a 500.
 */

const passbook = useTestPassbook();

interface Answer {
  status: number;
  nonce: string | null;
  wwwAuthenticate: string | null;
  body: Record<string, unknown>;
}

async function answerOf(response: Response): Promise<Answer> {
  const text = await response.text();
  return {
    status: response.status,
    nonce: response.headers.get('dpop-nonce'),
    wwwAuthenticate: response.headers.get('www-authenticate'),
    body: (text ? JSON.parse(text) : {}) as Record<string, unknown>,
  };
}

interface BoundApp {
  app: RegisteredClient;
  key: DpopKey;
  accessToken: string;
  refreshToken: string;
}

async function appWithDpopTokens(): Promise<BoundApp> {
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const key = await newDpopKey();
  const customer = await createTestCustomer(passbook.knex);
  const request = await authorizationRequest(config, 'openid offline_access transactions:read');
  const callback = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  const tokens = await oidc.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
    undefined,
    { DPoP: dpopHandle(config, key) },
  );
  return { app, key, accessToken: tokens.access_token, refreshToken: String(tokens.refresh_token) };
}

async function refresh(bound: BoundApp, proof: string): Promise<Answer> {
  const response = await fetch(`${passbook.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basicAuthorization(bound.app),
      dpop: proof,
    },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: bound.refreshToken }),
  });
  const answer = await answerOf(response);
  if (typeof answer.body.refresh_token === 'string') bound.refreshToken = answer.body.refresh_token;
  return answer;
}

/** A nonce Passbook hands out: the answer to a proof without one. */
async function freshNonce(bound: BoundApp): Promise<string> {
  const answer = await refresh(bound, await dpopProof(bound.key, tokenProof()));
  expect(answer).toMatchObject({ status: 400, body: { error: 'use_dpop_nonce' } });
  return String(answer.nonce);
}

function tokenProof(extra: Partial<ProofClaims> = {}): ProofClaims {
  return { htm: 'POST', htu: `${passbook.issuer}/token`, ...extra };
}

test('a proof without a nonce is answered use_dpop_nonce with a DPoP-Nonce; with it the refresh succeeds', async () => {
  const bound = await appWithDpopTokens();
  const answer = await refresh(bound, await dpopProof(bound.key, tokenProof()));
  expect(answer.status).toBe(400);
  expect(answer.body.error).toBe('use_dpop_nonce');
  expect(answer.nonce).toMatch(/^[\w-]{43}$/);

  const retried = await refresh(
    bound,
    await dpopProof(bound.key, tokenProof({ nonce: String(answer.nonce) })),
  );
  expect(retried).toMatchObject({ status: 200, body: { token_type: 'DPoP' } });
});

test('a nonce Passbook never handed out is answered use_dpop_nonce', async () => {
  const bound = await appWithDpopTokens();
  const answer = await refresh(bound, await dpopProof(bound.key, tokenProof({ nonce: 'x'.repeat(43) })));
  expect(answer).toMatchObject({ status: 400, body: { error: 'use_dpop_nonce' } });
  expect(answer.nonce).toMatch(/^[\w-]{43}$/);
});

test('a proof accepted once is refused when replayed', async () => {
  const bound = await appWithDpopTokens();
  const proof = await dpopProof(bound.key, tokenProof({ nonce: await freshNonce(bound) }));
  expect((await refresh(bound, proof)).status).toBe(200);
  expect(await refresh(bound, proof)).toMatchObject({
    status: 400,
    body: { error: 'invalid_grant', error_description: 'grant request is invalid' },
  });
});

test('of simultaneous copies of one proof at UserInfo exactly one is answered, the others invalid_token', async () => {
  const bound = await appWithDpopTokens();
  const nonce = await freshNonce(bound);
  const proof = await dpopProof(bound.key, {
    htm: 'GET',
    htu: `${passbook.issuer}/me`,
    accessToken: bound.accessToken,
    nonce,
  });
  const answers = await Promise.all(
    [1, 2, 3, 4].map(async () =>
      answerOf(
        await fetch(`${passbook.issuer}/me`, {
          headers: { authorization: `DPoP ${bound.accessToken}`, dpop: proof },
        }),
      ),
    ),
  );
  expect(answers.filter((answer) => answer.status === 200)).toHaveLength(1);
  for (const refused of answers.filter((answer) => answer.status !== 200)) {
    expect(refused).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
    expect(refused.wwwAuthenticate).toMatch(/^DPoP .*error="invalid_token"/);
  }
});

test.each([
  ['another URL', { htu: 'https://elsewhere.example/token' }],
  ['another method', { htm: 'GET' }],
])('a proof for %s is refused as invalid_dpop_proof', async (_what, claims) => {
  const bound = await appWithDpopTokens();
  const nonce = await freshNonce(bound);
  const answer = await refresh(bound, await dpopProof(bound.key, tokenProof({ nonce, ...claims })));
  expect(answer).toMatchObject({ status: 400, body: { error: 'invalid_dpop_proof' } });
});

test('a proof signed with an algorithm Passbook does not offer (RS256) is refused as invalid_dpop_proof', async () => {
  const bound = await appWithDpopTokens();
  const nonce = await freshNonce(bound);
  const rsa = await newDpopKey('RS256');
  const answer = await refresh(bound, await dpopProof(rsa, tokenProof({ nonce, alg: 'RS256' })));
  expect(answer).toMatchObject({ status: 400, body: { error: 'invalid_dpop_proof' } });
});

test('a DPoP token presented at UserInfo with a proof signed by another key is refused', async () => {
  const bound = await appWithDpopTokens();
  const nonce = await freshNonce(bound);
  const other = await newDpopKey();
  const proof = await dpopProof(other, {
    htm: 'GET',
    htu: `${passbook.issuer}/me`,
    accessToken: bound.accessToken,
    nonce,
  });
  const answer = await answerOf(
    await fetch(`${passbook.issuer}/me`, {
      headers: { authorization: `DPoP ${bound.accessToken}`, dpop: proof },
    }),
  );
  expect(answer).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
});
