import { randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import { SignJWT, decodeProtectedHeader, exportJWK, importJWK, type CryptoKey } from 'jose';
import { CustomerAgent } from '../support/customer-agent.ts';
import { dpopHandle, newDpopKey, type DpopKey } from '../support/dpop.ts';
import {
  fapiConfiguration,
  pushedAuthorizationRequest,
  registerFapiApp,
  type FapiApp,
} from '../support/fapi-app.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import { customerAllows, type AuthorizationRequest } from '../support/third-party-app.ts';

/**
 * The OpenID Foundation's fapi2-security-profile-final test plan (private_key_jwt, DPoP,
 * plain_fapi), module by module where a module's assertion can be made here, against an app
 * registered with `--profile fapi2`, through openid-client. Each test is named after its module.
 */

const passbook = useTestPassbook();
let app: FapiApp;
let config: oidc.Configuration;

beforeAll(async () => {
  app = await registerFapiApp(passbook);
  config = await fapiConfiguration(passbook, app);
});

async function customerApproves(request: AuthorizationRequest): Promise<string> {
  const customer = await createTestCustomer(passbook.knex);
  return customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
}

function exchange(request: AuthorizationRequest, callback: string, dpopKey: DpopKey | undefined) {
  return oidc.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
    undefined,
    dpopKey ? { DPoP: dpopHandle(config, dpopKey) } : {},
  );
}

/** The OAuth error a call was refused with, or a failure when it succeeded. */
async function oauthError(
  call: Promise<unknown>,
): Promise<{ error: string; description: string | undefined }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof oidc.ResponseBodyError) {
      return { error: error.error, description: error.error_description };
    }
    throw error;
  }
  throw new Error('the call succeeded');
}

/** A client assertion made by hand: the library always signs a correct one. */
async function clientAssertion(
  claims: { aud: string | string[]; alg?: string },
  signer: FapiApp = app,
  key: CryptoKey = signer.privateKey,
) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ aud: claims.aud })
    .setProtectedHeader({ alg: claims.alg ?? 'ES256', kid: String(signer.publicJwk.kid) })
    .setIssuer(signer.client.client_id)
    .setSubject(signer.client.client_id)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(key);
}

async function pushWithAssertion(assertion: string, clientId = app.client.client_id) {
  const response = await fetch(`${passbook.issuer}/request`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_id: clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      response_type: 'code',
      redirect_uri: TEST_REDIRECT_URI,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test('fapi2-security-profile-final-discovery-end-point-verification', () => {
  const metadata = config.serverMetadata();
  expect(metadata.pushed_authorization_request_endpoint).toBe(`${passbook.issuer}/request`);
  expect(metadata.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
  expect(metadata.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'PS256']));
  expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
  expect(metadata.authorization_response_iss_parameter_supported).toBe(true);
  expect(metadata.response_types_supported).toEqual(['code']);
  expect(metadata.id_token_signing_alg_values_supported).toContain('ES256');
});

test('fapi2-security-profile-final-happy-flow: PAR, private_key_jwt, DPoP-bound tokens, ES256 ID token', async () => {
  const dpopKey = await newDpopKey();
  const request = await pushedAuthorizationRequest(config, dpopKey);
  expect(request.url.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
  const tokens = await exchange(request, await customerApproves(request), dpopKey);

  expect(tokens.token_type).toBe('dpop');
  expect(decodeProtectedHeader(String(tokens.id_token)).alg).toBe('ES256');
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck, {
    DPoP: dpopHandle(config, dpopKey),
  });
  expect(userinfo.sub).toEqual(expect.any(String));
});

test('fapi2-security-profile-final-ensure-unsigned-authorization-request-without-using-par-fails', async () => {
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: TEST_REDIRECT_URI,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    state: oidc.randomState(),
  });
  const response = await fetch(url, { redirect: 'manual', headers: { accept: 'text/html' } });
  // The redirect_uri is one the app registered, so the refusal goes back to it (RFC 6749 §4.1.2.1).
  expect(response.status).toBe(303);
  const refusal = new URL(String(response.headers.get('location')));
  expect(refusal.origin + refusal.pathname).toBe(TEST_REDIRECT_URI);
  expect(refusal.searchParams.get('error')).toBe('invalid_request');
  expect(refusal.searchParams.get('error_description')).toBe('Pushed Authorization Request must be used');
  expect(refusal.searchParams.get('iss')).toBe(passbook.issuer);
  expect(refusal.searchParams.has('code')).toBe(false);
});

test('fapi2-security-profile-final-ensure-holder-of-key-required: no DPoP proof, no token', async () => {
  const request = await pushedAuthorizationRequest(config, undefined);
  const refused = await oauthError(exchange(request, await customerApproves(request), undefined));
  // The engine's answer when a DPoP-bound app sends no proof.
  expect(refused.error).toBe('invalid_grant');
});

test('fapi2-security-profile-final-ensure-token-endpoint-fails-with-mismatched-dpop-proof-jkt', async () => {
  // The code is bound to the key that pushed the request; another key cannot redeem it.
  const request = await pushedAuthorizationRequest(config, await newDpopKey());
  const refused = await oauthError(exchange(request, await customerApproves(request), await newDpopKey()));
  expect(refused.error).toBe('invalid_grant');
});

test('fapi2-security-profile-final-par-attempt-reuse-request_uri', async () => {
  const dpopKey = await newDpopKey();
  const request = await pushedAuthorizationRequest(config, dpopKey);
  await exchange(request, await customerApproves(request), dpopKey);
  const again = await fetch(request.url, { redirect: 'manual', headers: { accept: 'text/html' } });
  expect(again.status).toBe(400);
  expect(again.headers.get('location')).toBeNull();
});

test('fapi2-security-profile-final-ensure-signed-client-assertion-with-RS256-fails', async () => {
  const rsaApp = await registerFapiApp(passbook, 'PS256', 'RSA Payments');
  // The app's own RSA key, signing with RS256 instead of the PS256 it registered.
  const sameKeyForRs256 = await importJWK({ ...(await exportJWK(rsaApp.privateKey)), alg: 'RS256' }, 'RS256');
  const assertion = await clientAssertion(
    { aud: passbook.issuer, alg: 'RS256' },
    rsaApp,
    sameKeyForRs256 as CryptoKey,
  );
  const pushed = await pushWithAssertion(assertion, rsaApp.client.client_id);
  expect(pushed.status).toBe(401);
  expect(pushed.body).toMatchObject({ error: 'invalid_client' });
  // Signed with PS256, as registered, the same key is accepted.
  const ps256 = await clientAssertion({ aud: passbook.issuer, alg: 'PS256' }, rsaApp);
  expect((await pushWithAssertion(ps256, rsaApp.client.client_id)).status).toBe(201);
});

test('fapi2-security-profile-final-par-test-par-endpoint-url-as-audience-fails', async () => {
  const refused = await pushWithAssertion(await clientAssertion({ aud: `${passbook.issuer}/request` }));
  expect(refused.status).toBe(401);
  expect(refused.body).toMatchObject({ error: 'invalid_client' });
  // The same assertion with the issuer as its audience is accepted.
  const accepted = await pushWithAssertion(await clientAssertion({ aud: passbook.issuer }));
  expect(accepted.status).toBe(201);
});

test('a FAPI app cannot authenticate with a secret: it has none, and client_secret_basic is refused', async () => {
  expect(app.client.client_secret).toBeUndefined();
  const response = await fetch(`${passbook.issuer}/request`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${app.client.client_id}:guess`).toString('base64')}`,
    },
    body: new URLSearchParams({ response_type: 'code', redirect_uri: TEST_REDIRECT_URI, scope: 'openid' }),
  });
  expect(response.status).toBe(401);
  expect(await response.json()).toMatchObject({ error: 'invalid_client' });
});

test('a FAPI app gets codes that live 60 seconds at most', async () => {
  const dpopKey = await newDpopKey();
  const request = await pushedAuthorizationRequest(config, dpopKey);
  const callback = new URL(await customerApproves(request));
  const code = callback.searchParams.get('code');
  const row = await passbook
    .knex('oidc_models')
    .where({ kind: 'AuthorizationCode', id: String(code) })
    .first<{ expires_at: Date } | undefined>('expires_at');
  expect(row).toBeDefined();
  const lifetime = ((row?.expires_at.getTime() ?? 0) - Date.now()) / 1000;
  expect(lifetime).toBeGreaterThan(0);
  expect(lifetime).toBeLessThanOrEqual(60);
});

test('fapi2-security-profile-final-refresh-token: bound to the DPoP key, and not rotated', async () => {
  const dpopKey = await newDpopKey();
  const request = await pushedAuthorizationRequest(config, dpopKey, {
    scope: 'openid offline_access',
    prompt: 'consent',
  });
  const tokens = await exchange(request, await customerApproves(request), dpopKey);
  const refreshToken = String(tokens.refresh_token);

  const refreshed = await oidc.refreshTokenGrant(config, refreshToken, undefined, {
    DPoP: dpopHandle(config, dpopKey),
  });
  expect(refreshed.token_type).toBe('dpop');
  expect(refreshed.refresh_token ?? refreshToken).toBe(refreshToken);
  // Still good after its use: a lost answer costs the app nothing.
  const again = await oidc.refreshTokenGrant(config, refreshToken, undefined, {
    DPoP: dpopHandle(config, dpopKey),
  });
  expect(again.access_token).not.toBe(refreshed.access_token);

  // The app authenticates every refresh with its key (RFC 9449 §5: a confidential app's refresh
  // token is bound by its authentication), and each new access token needs a proof again.
  const withoutProof = await oauthError(oidc.refreshTokenGrant(config, refreshToken));
  expect(withoutProof.error).toBe('invalid_grant');
});

test('an ordinary app beside a FAPI one keeps its secret and needs no PAR or DPoP', async () => {
  const ordinary = await registerTestApp(passbook);
  expect(ordinary.client_secret).toEqual(expect.any(String));
  expect(ordinary.metadata).toMatchObject({ token_endpoint_auth_method: 'client_secret_basic' });
  expect(ordinary.metadata).not.toHaveProperty('require_pushed_authorization_requests');
  expect(ordinary.metadata).not.toHaveProperty('dpop_bound_access_tokens');
  expect(ordinary.metadata).not.toHaveProperty('app_profile');
});

test('an app of the profile whose stored metadata was weakened no longer loads', async () => {
  const weakened = await registerFapiApp(passbook, 'ES256', 'Weakened');
  await passbook
    .knex('clients')
    .where({ client_id: weakened.client.client_id })
    .update({ metadata: passbook.knex.raw(`metadata - 'require_pushed_authorization_requests'`) });
  const weakConfig = await fapiConfiguration(passbook, weakened);
  const refused = await oauthError(pushedAuthorizationRequest(weakConfig, await newDpopKey()));
  // A bank-side fault, answered as such: nothing is served under the weakened metadata.
  expect(refused.error).toBe('invalid_client_metadata');
});
