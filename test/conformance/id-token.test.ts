import { createHash } from 'node:crypto';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
} from 'jose';
import type * as oidc from 'openid-client';
import { CustomerAgent } from '../support/customer-agent.ts';
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
  customerAllows,
  discoverAs,
  exchangeCode,
} from '../support/third-party-app.ts';

/**
 * Checklist H26-H27: the ID token checked by hand with jose, not through the client library's own
 * validation, so that the signature, the key and every claim are looked at independently.
 */

let passbook: TestPassbook;
let customer: TestCustomer;

beforeAll(async () => {
  passbook = await startTestPassbook();
  customer = await createTestCustomer(passbook.knex, 'Ida Token');
});

afterAll(async () => {
  await passbook.close();
});

/** Clock skew allowed between this process and the server (the same machine, so small). */
const SKEW_SECONDS = 5;

interface SignedIn {
  config: oidc.Configuration;
  clientId: string;
  nonce: string;
  idToken: string;
  accessToken: string;
  signedInAt: number;
}

/** A fresh app's whole code flow; max_age makes auth_time a required claim of the ID token. */
async function signIn(): Promise<SignedIn> {
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const request = await authorizationRequest(config, 'openid profile', { max_age: '3600' });
  const signedInAt = Math.floor(Date.now() / 1000);
  const callbackUrl = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  const tokens = await exchangeCode(config, callbackUrl, request);
  if (!tokens.id_token) throw new Error('no ID token');
  return {
    config,
    clientId: app.client_id,
    nonce: request.nonce,
    idToken: tokens.id_token,
    accessToken: tokens.access_token,
    signedInAt,
  };
}

function jwksUri(config: oidc.Configuration): URL {
  const uri = config.serverMetadata().jwks_uri;
  if (!uri) throw new Error('discovery has no jwks_uri');
  return new URL(uri);
}

/** Verifies the signature against the server's published keys and returns the payload. */
async function verify(signedIn: SignedIn): Promise<JWTPayload> {
  const { payload } = await jwtVerify(signedIn.idToken, createRemoteJWKSet(jwksUri(signedIn.config)), {
    algorithms: ['RS256', 'ES256'],
  });
  return payload;
}

/** at_hash per OpenID Connect Core 3.1.3.6 for RS256: the left half of SHA-256, base64url. */
function atHash(accessToken: string): string {
  const digest = createHash('sha256').update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

describe('H26: the signature', () => {
  test('is RS256 by default and made with a key the JWKS publishes under the same kid', async () => {
    const signedIn = await signIn();
    const header = decodeProtectedHeader(signedIn.idToken);
    expect(header.alg).toBe('RS256');
    expect(typeof header.kid).toBe('string');

    const response = await fetch(jwksUri(signedIn.config));
    expect(response.status).toBe(200);
    const jwks = (await response.json()) as JSONWebKeySet;
    const key = jwks.keys.find((candidate) => candidate.kid === header.kid);
    expect(key).toBeDefined();
    expect(key?.kty).toBe('RSA');
    expect(key?.use ?? 'sig').toBe('sig');
    expect(jwks.keys.filter((candidate) => candidate.kid === header.kid)).toHaveLength(1);
  });

  test('verifies with jose against the jwks_uri', async () => {
    const signedIn = await signIn();
    const { protectedHeader } = await jwtVerify(
      signedIn.idToken,
      createRemoteJWKSet(jwksUri(signedIn.config)),
      {
        algorithms: ['RS256'],
        issuer: passbook.issuer,
        audience: signedIn.clientId,
      },
    );
    expect(protectedHeader.alg).toBe('RS256');
  });
});

describe('H27: the claims', () => {
  test('iss is the issuer and aud contains the client_id', async () => {
    const signedIn = await signIn();
    const claims = await verify(signedIn);
    expect(claims.iss).toBe(passbook.issuer);
    const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    expect(audience).toContain(signedIn.clientId);
    if (audience.length > 1) expect(claims.azp).toBe(signedIn.clientId);
  });

  test('exp is in the future; iat and auth_time are not', async () => {
    const signedIn = await signIn();
    const claims = await verify(signedIn);
    const now = Math.floor(Date.now() / 1000);
    expect(typeof claims.exp).toBe('number');
    expect(claims.exp).toBeGreaterThan(now);
    expect(typeof claims.iat).toBe('number');
    expect(claims.iat).toBeLessThanOrEqual(now + SKEW_SECONDS);
    expect(claims.iat).toBeGreaterThanOrEqual(signedIn.signedInAt - SKEW_SECONDS);
    expect(claims.exp).toBeGreaterThan(claims.iat ?? Infinity);
    expect(typeof claims.auth_time).toBe('number');
    expect(claims.auth_time).toBeLessThanOrEqual(now + SKEW_SECONDS);
    expect(claims.auth_time).toBeGreaterThanOrEqual(signedIn.signedInAt - SKEW_SECONDS);
  });

  test('sub is the customer and nonce is the one the app sent', async () => {
    const signedIn = await signIn();
    const claims = await verify(signedIn);
    expect(claims.sub).toBe(customer.id);
    expect(claims.nonce).toBe(signedIn.nonce);
  });

  test('at_hash, when present, is the left half of SHA-256 of the access token', async () => {
    const signedIn = await signIn();
    const claims = await verify(signedIn);
    // OpenID Connect Core 3.1.3.6 leaves at_hash optional in the code flow's token response.
    if (claims.at_hash !== undefined) expect(claims.at_hash).toBe(atHash(signedIn.accessToken));
  });
});
