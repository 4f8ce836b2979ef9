import * as oidc from 'openid-client';
import { CustomerAgent } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import {
  authorizationRequest,
  customerAllows,
  discoverAs,
  exchangeCode,
} from '../support/third-party-app.ts';

const passbook = useTestPassbook();

const SCOPE = 'openid profile';

/** A fresh customer, app and code; the code was requested with an S256 challenge. */
async function codeForNewApp(scope = SCOPE) {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const request = await authorizationRequest(config, scope);
  const callbackUrl = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  return { customer, config, request, callbackUrl };
}

async function tokenError(grant: Promise<unknown>): Promise<{ status: number; error: string }> {
  try {
    await grant;
  } catch (error) {
    if (error instanceof oidc.ResponseBodyError) return { status: error.status, error: error.error };
    throw error;
  }
  throw new Error('the token endpoint issued tokens');
}

async function authorizationErrorFor(config: oidc.Configuration, parameters: Record<string, string>) {
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: TEST_REDIRECT_URI,
    scope: SCOPE,
    state: oidc.randomState(),
    nonce: oidc.randomNonce(),
    ...parameters,
  });
  const response = await fetch(url, { redirect: 'manual' });
  expect([302, 303]).toContain(response.status);
  const location = response.headers.get('location') ?? '';
  expect(location.startsWith(`${TEST_REDIRECT_URI}?`)).toBe(true);
  const callback = new URL(location);
  expect(callback.searchParams.get('state')).toBe(url.searchParams.get('state'));
  expect(callback.searchParams.has('code')).toBe(false);
  return callback.searchParams.get('error');
}

describe('PKCE at the token endpoint', () => {
  test('the right S256 code_verifier gets tokens', async () => {
    const { customer, config, request, callbackUrl } = await codeForNewApp();
    const tokens = await exchangeCode(config, callbackUrl, request);
    expect(tokens.access_token).toBeTruthy();
    expect(tokens.claims()?.sub).toBe(customer.id);
  });

  test('a wrong code_verifier gets 400 invalid_grant', async () => {
    const { config, request, callbackUrl } = await codeForNewApp();
    const grant = oidc.authorizationCodeGrant(config, new URL(callbackUrl), {
      pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
      expectedState: request.state,
      expectedNonce: request.nonce,
    });
    expect(await tokenError(grant)).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test('a missing code_verifier gets 400 invalid_grant', async () => {
    const { config, request, callbackUrl } = await codeForNewApp();
    const grant = oidc.authorizationCodeGrant(config, new URL(callbackUrl), {
      expectedState: request.state,
      expectedNonce: request.nonce,
    });
    expect(await tokenError(grant)).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test('the code_challenge itself sent as the verifier gets 400 invalid_grant', async () => {
    const { config, request, callbackUrl } = await codeForNewApp();
    const grant = oidc.authorizationCodeGrant(config, new URL(callbackUrl), {
      pkceCodeVerifier: await oidc.calculatePKCECodeChallenge(request.codeVerifier),
      expectedState: request.state,
      expectedNonce: request.nonce,
    });
    expect(await tokenError(grant)).toEqual({ status: 400, error: 'invalid_grant' });
  });
});

describe('PKCE at the authorization endpoint (required for every client)', () => {
  test('code_challenge_method=plain is refused with invalid_request', async () => {
    const app = await registerTestApp(passbook);
    const verifier = oidc.randomPKCECodeVerifier();
    const error = await authorizationErrorFor(await discoverAs(passbook, app), {
      code_challenge: verifier,
      code_challenge_method: 'plain',
    });
    expect(error).toBe('invalid_request');
  });

  test('a code_challenge without code_challenge_method (plain by default) is refused with invalid_request', async () => {
    const app = await registerTestApp(passbook);
    const error = await authorizationErrorFor(await discoverAs(passbook, app), {
      code_challenge: oidc.randomPKCECodeVerifier(),
    });
    expect(error).toBe('invalid_request');
  });

  test('a confidential app that sends no code_challenge is refused with invalid_request', async () => {
    const app = await registerTestApp(passbook);
    const error = await authorizationErrorFor(await discoverAs(passbook, app), {});
    expect(error).toBe('invalid_request');
  });

  test('a public app that sends no code_challenge is refused with invalid_request', async () => {
    const app = await registerTestApp(passbook, { isPublic: true });
    const error = await authorizationErrorFor(await discoverAs(passbook, app), {});
    expect(error).toBe('invalid_request');
  });
});

describe('entropy of codes and tokens', () => {
  const BASE64URL_128_BITS = /^[A-Za-z0-9_-]{22,}$/;

  test('authorization codes, access tokens and refresh tokens have at least 128 bits (22 base64url characters)', async () => {
    const { config, request, callbackUrl } = await codeForNewApp('openid offline_access');
    const tokens = await exchangeCode(config, callbackUrl, request);
    expect(new URL(callbackUrl).searchParams.get('code')).toMatch(BASE64URL_128_BITS);
    expect(tokens.access_token).toMatch(BASE64URL_128_BITS);
    expect(tokens.refresh_token).toMatch(BASE64URL_128_BITS);
  });

  test('no two flows get the same code, access token or refresh token', async () => {
    const first = await codeForNewApp('openid offline_access');
    const second = await codeForNewApp('openid offline_access');
    const firstTokens = await exchangeCode(first.config, first.callbackUrl, first.request);
    const secondTokens = await exchangeCode(second.config, second.callbackUrl, second.request);
    const code = (url: string) => new URL(url).searchParams.get('code');
    expect(code(first.callbackUrl)).not.toBe(code(second.callbackUrl));
    expect(firstTokens.access_token).not.toBe(secondTokens.access_token);
    expect(firstTokens.refresh_token).not.toBe(secondTokens.refresh_token);
  });
});
