import { randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import { SignJWT } from 'jose';
import { CustomerAgent } from '../support/customer-agent.ts';
import { dpopHandle, dpopProof, newDpopKey, type DpopKey } from '../support/dpop.ts';
import {
  fapiConfiguration,
  pushedAuthorizationRequest,
  registerFapiApp,
  type FapiApp,
} from '../support/fapi-app.ts';
import { TEST_REDIRECT_URI, createTestCustomer, useTestPassbook } from '../support/passbook.ts';
import { customerAllows, type AuthorizationRequest } from '../support/third-party-app.ts';

/**
 * The rest of the OpenID Foundation's fapi2-security-profile-final test plan (private_key_jwt,
 * DPoP, plain_fapi): the PAR, PKCE, authorization-code, client-assertion and DPoP-binding modules,
 * each test named after its module, against apps registered with `--profile fapi2`.
 */

const passbook = useTestPassbook();
let app: FapiApp;
let config: oidc.Configuration;
let otherApp: FapiApp;
let otherConfig: oidc.Configuration;

beforeAll(async () => {
  app = await registerFapiApp(passbook);
  config = await fapiConfiguration(passbook, app);
  otherApp = await registerFapiApp(passbook, 'ES256', 'Other Payments');
  otherConfig = await fapiConfiguration(passbook, otherApp);
});

const MODULE = 'fapi2-security-profile-final-';

/** The OAuth error a call was refused with, or a failure when it succeeded. */
async function oauthError(call: Promise<unknown>): Promise<{ status: number; error: string }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof oidc.ResponseBodyError) return { status: error.status, error: error.error };
    throw error;
  }
  throw new Error('the call succeeded');
}

async function customerApproves(request: AuthorizationRequest, agent = newAgent()): Promise<string> {
  const customer = await createTestCustomer(passbook.knex);
  return customerAllows(agent, request, customer);
}

function newAgent(): CustomerAgent {
  return new CustomerAgent([TEST_REDIRECT_URI]);
}

function exchange(
  request: AuthorizationRequest,
  callback: string,
  dpop: oidc.DPoPHandle | undefined,
  checks: Partial<oidc.AuthorizationCodeGrantChecks> = {},
  appConfig = config,
) {
  return oidc.authorizationCodeGrant(
    appConfig,
    new URL(callback),
    {
      pkceCodeVerifier: request.codeVerifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      ...checks,
    },
    undefined,
    dpop ? { DPoP: dpop } : {},
  );
}

/** A pushed request with exactly these parameters, nothing added: for the ones that omit some. */
async function pushExactly(parameters: Record<string, string>, dpopKey?: DpopKey): Promise<URL> {
  return oidc.buildAuthorizationUrlWithPAR(
    config,
    parameters,
    dpopKey ? { DPoP: dpopHandle(config, dpopKey) } : {},
  );
}

async function pkceParameters(method = 'S256') {
  const verifier = oidc.randomPKCECodeVerifier();
  const challenge = method === 'S256' ? await oidc.calculatePKCECodeChallenge(verifier) : verifier;
  return { code_challenge: challenge, code_challenge_method: method };
}

interface AssertionClaims {
  aud?: string | string[];
  iatOffset?: number;
  nbfOffset?: number;
  expOffset?: number;
  sub?: string | null;
  /** The app the assertion claims to be (its iss and sub), when not the signer. */
  clientId?: string;
}

/** A client assertion made by hand, for the claims the library always gets right. */
function clientAssertion(claims: AssertionClaims = {}, signer: FapiApp = app): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = {
    iss: claims.clientId ?? signer.client.client_id,
    aud: claims.aud ?? passbook.issuer,
    jti: randomUUID(),
    iat: now + (claims.iatOffset ?? 0),
    exp: now + (claims.expOffset ?? 60),
  };
  if (claims.sub !== null) payload.sub = claims.sub ?? claims.clientId ?? signer.client.client_id;
  if (claims.nbfOffset !== undefined) payload.nbf = now + claims.nbfOffset;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: String(signer.publicJwk.alg), kid: String(signer.publicJwk.kid) })
    .sign(signer.privateKey);
}

async function postForm(path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const response = await fetch(`${passbook.issuer}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

async function pushWithAssertion(assertion: string, extra: Record<string, string> = {}) {
  return postForm('/request', {
    client_id: app.client.client_id,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    response_type: 'code',
    redirect_uri: TEST_REDIRECT_URI,
    scope: 'openid',
    ...(await pkceParameters()),
    ...extra,
  });
}

function requestUriId(request: AuthorizationRequest): string {
  const requestUri = String(request.url.searchParams.get('request_uri'));
  return requestUri.slice('urn:ietf:params:oauth:request_uri:'.length);
}

/** Ages a stored row past its expiry, instead of waiting for it. */
async function expire(kind: string, id: string): Promise<void> {
  const aged = await passbook
    .knex('oidc_models')
    .where({ kind, id })
    .update({ expires_at: new Date(Date.now() - 1000) });
  expect(aged).toBe(1);
}

/** A DPoP handle whose proofs carry these claims changed, as the suite's proofs do. */
function dpopHandleWith(key: DpopKey, change: (payload: Record<string, unknown>) => void): oidc.DPoPHandle {
  return oidc.getDPoPHandle(config, key.keyPair, {
    [oidc.modifyAssertion]: (_header, payload) => change(payload),
  });
}

/** UserInfo through a raw request, with the scheme written as given and one retry for a nonce. */
async function userinfoWithScheme(scheme: string, accessToken: string, key: DpopKey) {
  const send = async (nonce?: string) =>
    fetch(`${passbook.issuer}/me`, {
      headers: {
        authorization: `${scheme} ${accessToken}`,
        dpop: await dpopProof(key, {
          htm: 'GET',
          htu: `${passbook.issuer}/me`,
          accessToken,
          ...(nonce ? { nonce } : {}),
        }),
      },
    });
  const first = await send();
  const nonce = first.headers.get('dpop-nonce');
  return first.status === 401 && nonce ? send(nonce) : first;
}

describe('PAR', () => {
  test(`${MODULE}par-attempt-to-use-expired-request_uri`, async () => {
    const request = await pushedAuthorizationRequest(config, await newDpopKey());
    await expire('PushedAuthorizationRequest', requestUriId(request));
    const answer = await newAgent().open(request.url.href);
    expect(answer.status).toBe(400);
    expect(answer.url).not.toContain(TEST_REDIRECT_URI);
    expect(answer.body).toContain('invalid_request_uri');
  });

  test(`${MODULE}par-ensure-reused-request-uri-prior-to-auth-completion-succeeds`, async () => {
    const dpopKey = await newDpopKey();
    const request = await pushedAuthorizationRequest(config, dpopKey);
    // A first browser opens the request and stops at the sign-in page.
    const abandoned = await newAgent().open(request.url.href);
    expect(abandoned.url).toContain('/interaction/');
    // The same request_uri, opened again, still completes.
    const tokens = await exchange(request, await customerApproves(request), dpopHandle(config, dpopKey));
    expect(tokens.token_type).toBe('dpop');
  });

  test(`${MODULE}par-attempt-to-use-request_uri-for-different-client`, async () => {
    const request = await pushedAuthorizationRequest(config, await newDpopKey());
    const stolen = new URL(request.url);
    stolen.searchParams.set('client_id', otherApp.client.client_id);
    const answer = await newAgent().open(stolen.href);
    // The bank's error page: the request names another app, so no redirect of it can be trusted.
    expect(answer.status).toBe(400);
    expect(answer.url).not.toContain(TEST_REDIRECT_URI);
    expect(answer.body).toContain('invalid_request_object');
  });

  test(`${MODULE}par-ensure-pkce-required`, async () => {
    const refused = await oauthError(
      pushExactly({ redirect_uri: TEST_REDIRECT_URI, scope: 'openid', state: oidc.randomState() }),
    );
    expect(refused).toEqual({ status: 400, error: 'invalid_request' });
  });

  test(`${MODULE}par-plain-pkce-rejected`, async () => {
    const refused = await oauthError(
      pushExactly({ redirect_uri: TEST_REDIRECT_URI, scope: 'openid', ...(await pkceParameters('plain')) }),
    );
    expect(refused).toEqual({ status: 400, error: 'invalid_request' });
  });

  test(`${MODULE}par-attempt-invalid-http-method`, async () => {
    const response = await fetch(`${passbook.issuer}/request`, {
      method: 'GET',
      headers: { accept: 'application/json' },
    });
    // RFC 9126 §2: the endpoint takes POST only.
    expect(response.status).toBe(405);
  });

  test(`${MODULE}par-authorization-request-containing-request_uri-form-param`, async () => {
    const refused = await pushWithAssertion(await clientAssertion(), {
      request_uri: 'urn:ietf:params:oauth:request_uri:smuggled',
    });
    // One of the three answers the module accepts.
    expect(refused).toMatchObject({ status: 400, body: { error: 'request_uri_not_supported' } });
  });

  test(`${MODULE}par-without-duplicate-parameters`, async () => {
    const dpopKey = await newDpopKey();
    const request = await pushedAuthorizationRequest(config, dpopKey);
    // Only the two parameters RFC 9126 §4 asks for travel through the browser.
    expect([...request.url.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    const tokens = await exchange(request, await customerApproves(request), dpopHandle(config, dpopKey));
    expect(tokens.access_token).toEqual(expect.any(String));
  });

  test(`${MODULE}par-ensure-jwt-client-assertions-nbf-8-seconds-in-the-future-is-accepted`, async () => {
    const assertion = await clientAssertion({ iatOffset: 8, nbfOffset: 8 });
    expect((await pushWithAssertion(assertion)).status).toBe(201);
  });

  test(`${MODULE}par-ensure-jwt-client-assertions-nbf-over-60-seconds-in-the-future-fails`, async () => {
    const assertion = await clientAssertion({ iatOffset: 70, nbfOffset: 70, expOffset: 130 });
    expect(await pushWithAssertion(assertion)).toMatchObject({
      status: 401,
      body: { error: 'invalid_client' },
    });
  });

  test(`${MODULE}par-test-array-as-audience-fails`, async () => {
    // FAPI 2.0 asks for the issuer as a string; an array holding it is refused.
    const assertion = await clientAssertion({ aud: [passbook.issuer, `${passbook.issuer}/request`] });
    expect(await pushWithAssertion(assertion)).toMatchObject({
      status: 401,
      body: { error: 'invalid_client' },
    });
  });

  test(`${MODULE}par-test-token-endpoint-url-as-audience-fails`, async () => {
    const assertion = await clientAssertion({ aud: `${passbook.issuer}/token` });
    expect(await pushWithAssertion(assertion)).toMatchObject({
      status: 401,
      body: { error: 'invalid_client' },
    });
  });
});

describe('client assertions at the token endpoint', () => {
  /** A code the customer approved, redeemed by a raw request with `authentication` as its client part. */
  async function redeemWith(authentication: (code: string) => Promise<Record<string, string>>) {
    const request = await pushedAuthorizationRequest(config, await newDpopKey());
    const code = String(new URL(await customerApproves(request)).searchParams.get('code'));
    return postForm('/token', {
      grant_type: 'authorization_code',
      code,
      redirect_uri: TEST_REDIRECT_URI,
      code_verifier: request.codeVerifier,
      ...(await authentication(code)),
    });
  }

  const assertionFields = (assertion: string, clientId = app.client.client_id) => ({
    client_id: clientId,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  });

  test.each([
    ['ensure-client-assertion-with-exp-is-5-minutes-in-past-fails', { iatOffset: -360, expOffset: -300 }],
    ['ensure-client-assertion-with-wrong-aud-fails', { aud: 'https://elsewhere.example' }],
    ['ensure-client-assertion-with-no-sub-fails', { sub: null }],
  ] satisfies [string, AssertionClaims][])(`${MODULE}%s`, async (_module, claims) => {
    const refused = await redeemWith(async () => assertionFields(await clientAssertion(claims)));
    expect(refused).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });

  test(`${MODULE}ensure-client-assertion-in-token-endpoint`, async () => {
    const refused = await redeemWith(() => Promise.resolve({ client_id: app.client.client_id }));
    // The module accepts invalid_client (401) or invalid_request (400).
    expect(refused).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });

  test(`${MODULE}ensure-client-id-in-token-endpoint`, async () => {
    // The other app's client_id and an assertion naming it, signed with this app's key.
    const refused = await redeemWith(async () =>
      assertionFields(
        await clientAssertion({ clientId: otherApp.client.client_id }),
        otherApp.client.client_id,
      ),
    );
    expect(refused).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });
});

describe('the authorization request', () => {
  test(`${MODULE}user-rejects-authentication`, async () => {
    const request = await pushedAuthorizationRequest(config, await newDpopKey());
    const customer = await createTestCustomer(passbook.knex);
    const agent = newAgent();
    const consent = await agent.signIn(
      await agent.open(request.url.href),
      customer.username,
      customer.password,
    );
    const denied = new URL((await agent.consent(consent, 'deny')).url);
    expect(denied.origin + denied.pathname).toBe(TEST_REDIRECT_URI);
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('state')).toBe(request.state);
    expect(denied.searchParams.get('iss')).toBe(passbook.issuer);
    expect(denied.searchParams.has('code')).toBe(false);
  });

  test(`${MODULE}ensure-authorization-request-without-state-success`, async () => {
    const dpopKey = await newDpopKey();
    const pkce = oidc.randomPKCECodeVerifier();
    const url = await pushExactly(
      {
        redirect_uri: TEST_REDIRECT_URI,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(pkce),
        code_challenge_method: 'S256',
      },
      dpopKey,
    );
    const request = { url, codeVerifier: pkce, state: '', nonce: '' };
    const callback = new URL(await customerApproves(request));
    expect(callback.searchParams.has('state')).toBe(false);
    const tokens = await exchange(request, callback.href, dpopHandle(config, dpopKey), {
      expectedState: oidc.skipStateCheck,
      expectedNonce: undefined,
    });
    expect(tokens.access_token).toEqual(expect.any(String));
  });

  test.each([
    ['ensure-response-type-code-idtoken-fails', 'code id_token'],
    ['ensure-response-type-token-fails', 'token'],
  ])(`${MODULE}%s`, async (_module, responseType) => {
    const refused = await oauthError(
      pushExactly({
        response_type: responseType,
        redirect_uri: TEST_REDIRECT_URI,
        scope: 'openid',
        nonce: oidc.randomNonce(),
        ...(await pkceParameters()),
      }),
    );
    expect(refused).toEqual({ status: 400, error: 'unsupported_response_type' });
  });

  test(`${MODULE}ensure-redirect-uri-in-authorization-request`, async () => {
    const refused = await oauthError(pushExactly({ scope: 'openid', ...(await pkceParameters()) }));
    expect(refused).toEqual({ status: 400, error: 'invalid_request' });
  });
});

describe('parameters the authorization request may carry', () => {
  /** A pushed request, its callback once approved, and the tokens it is redeemed for. */
  async function flow(params: Record<string, string>, frontChannel: Record<string, string> = {}) {
    const dpopKey = await newDpopKey();
    const request = await pushedAuthorizationRequest(config, dpopKey, params);
    for (const [name, value] of Object.entries(frontChannel)) request.url.searchParams.set(name, value);
    const customer = await createTestCustomer(passbook.knex);
    const callback = new URL(await customerAllows(newAgent(), request, customer));
    return { request, callback, customer, dpop: dpopHandle(config, dpopKey) };
  }

  test(`${MODULE}ensure-authorization-request-without-nonce-success`, async () => {
    const dpopKey = await newDpopKey();
    const pkce = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = await pushExactly(
      {
        redirect_uri: TEST_REDIRECT_URI,
        scope: 'openid',
        state,
        code_challenge: await oidc.calculatePKCECodeChallenge(pkce),
        code_challenge_method: 'S256',
      },
      dpopKey,
    );
    const request = { url, codeVerifier: pkce, state, nonce: '' };
    const tokens = await exchange(request, await customerApproves(request), dpopHandle(config, dpopKey), {
      expectedNonce: undefined,
    });
    expect(tokens.claims()).not.toHaveProperty('nonce');
  });

  test.each([
    ['ensure-authorization-request-with-64-char-nonce-success', 'nonce', 64],
    ['ensure-authorization-request-with-long-nonce', 'nonce', 384],
    ['ensure-authorization-request-with-long-state', 'state', 384],
  ])(`${MODULE}%s`, async (_module, parameter, length) => {
    const value = 'n'.repeat(length - 8) + oidc.randomState().slice(0, 8);
    const { request, callback, dpop } = await flow({ [parameter]: value });
    // Returned whole, neither cut nor refused.
    const expected = parameter === 'nonce' ? { expectedNonce: value } : { expectedState: value };
    const tokens = await exchange(request, callback.href, dpop, expected);
    if (parameter === 'nonce') expect(tokens.claims()?.nonce).toBe(value);
    else expect(callback.searchParams.get('state')).toBe(value);
  });

  test(`${MODULE}ensure-other-scope-order-succeeds`, async () => {
    const { request, callback, customer, dpop } = await flow({ scope: 'profile openid' });
    const tokens = await exchange(request, callback.href, dpop);
    expect(tokens.scope?.split(' ').sort()).toEqual(['openid', 'profile']);
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, customer.id, { DPoP: dpop });
    expect(userinfo.name).toBe(customer.name);
  });

  test(`${MODULE}test-claims-parameter-identity-claims`, async () => {
    const claims = {
      id_token: { name: { essential: true }, 'urn:example:unknown': null },
      userinfo: { name: null, email: null },
    };
    const { request, callback, customer, dpop } = await flow({ claims: JSON.stringify(claims) });
    const tokens = await exchange(request, callback.href, dpop);
    expect(tokens.claims()).toMatchObject({ sub: customer.id, name: customer.name });
    expect(tokens.claims()).not.toHaveProperty('urn:example:unknown');
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, customer.id, { DPoP: dpop });
    expect(userinfo).toMatchObject({ name: customer.name, email: customer.email });
  });

  // Only what was pushed counts: what the browser adds beside request_uri is ignored.
  test(`${MODULE}state-only-outside-request-object-not-used`, async () => {
    const dpopKey = await newDpopKey();
    const pkce = oidc.randomPKCECodeVerifier();
    const url = await pushExactly(
      {
        redirect_uri: TEST_REDIRECT_URI,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(pkce),
        code_challenge_method: 'S256',
      },
      dpopKey,
    );
    url.searchParams.set('state', 'added-outside');
    const callback = new URL(await customerApproves({ url, codeVerifier: pkce, state: '', nonce: '' }));
    expect(callback.searchParams.has('state')).toBe(false);
    expect(callback.searchParams.get('code')).toEqual(expect.any(String));
  });

  test(`${MODULE}ensure-different-state-inside-and-outside-request-object`, async () => {
    const { request, callback } = await flow({}, { state: 'added-outside' });
    expect(callback.searchParams.get('state')).toBe(request.state);
  });

  test(`${MODULE}ensure-different-nonce-inside-and-outside-request-object`, async () => {
    const { request, callback, dpop } = await flow({}, { nonce: 'added-outside' });
    const tokens = await exchange(request, callback.href, dpop);
    expect(tokens.claims()?.nonce).toBe(request.nonce);
  });

  test(`${MODULE}plain-fapi-tolerate-unregistered-redirect-uri`, async () => {
    // RFC 9126 §2.4 allows it; the bank refuses it on purpose: redirect URIs match exactly.
    const refused = await oauthError(
      pushedAuthorizationRequest(config, await newDpopKey(), {
        redirect_uri: `${TEST_REDIRECT_URI}/unregistered`,
      }),
    );
    expect(refused).toEqual({ status: 400, error: 'invalid_request' });
  });
});

describe('the token endpoint', () => {
  async function approvedRequest(dpopKey: DpopKey) {
    const request = await pushedAuthorizationRequest(config, dpopKey);
    return { request, callback: await customerApproves(request) };
  }

  test(`${MODULE}ensure-authorization-code-is-bound-to-client`, async () => {
    const dpopKey = await newDpopKey();
    const { request, callback } = await approvedRequest(dpopKey);
    const refused = await oauthError(
      exchange(request, callback, dpopHandle(otherConfig, dpopKey), {}, otherConfig),
    );
    expect(refused).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test(`${MODULE}ensure-token-endpoint-fails-with-expired-auth-code`, async () => {
    const dpopKey = await newDpopKey();
    const { request, callback } = await approvedRequest(dpopKey);
    await expire('AuthorizationCode', String(new URL(callback).searchParams.get('code')));
    const refused = await oauthError(exchange(request, callback, dpopHandle(config, dpopKey)));
    expect(refused).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test(`${MODULE}incorrect-pkce-code-verifier-rejected`, async () => {
    const dpopKey = await newDpopKey();
    const { request, callback } = await approvedRequest(dpopKey);
    const refused = await oauthError(
      exchange(request, callback, dpopHandle(config, dpopKey), {
        pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
      }),
    );
    expect(refused).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test(`${MODULE}ensure-pkce-code-verifier-required`, async () => {
    const dpopKey = await newDpopKey();
    const { request, callback } = await approvedRequest(dpopKey);
    const refused = await oauthError(
      exchange(request, callback, dpopHandle(config, dpopKey), { pkceCodeVerifier: undefined }),
    );
    expect(refused).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test(`${MODULE}attempt-reuse-authorization-code-after-one-second`, async () => {
    const dpopKey = await newDpopKey();
    const dpop = dpopHandle(config, dpopKey);
    const { request, callback } = await approvedRequest(dpopKey);
    const tokens = await exchange(request, callback, dpop);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await oauthError(exchange(request, callback, dpop))).toEqual({
      status: 400,
      error: 'invalid_grant',
    });
    // The reuse ends what the first redemption got (RFC 6749 §4.1.2).
    expect((await userinfoWithScheme('DPoP', tokens.access_token, dpopKey)).status).toBe(401);
  });
});

describe('DPoP', () => {
  async function tokensFor(dpopKey: DpopKey, dpop: oidc.DPoPHandle = dpopHandle(config, dpopKey)) {
    const request = await pushedAuthorizationRequest(config, dpopKey);
    return exchange(request, await customerApproves(request), dpop);
  }

  test(`${MODULE}access-token-type-header-case-sensitivity`, async () => {
    const dpopKey = await newDpopKey();
    const tokens = await tokensFor(dpopKey);
    const lowerCase = await userinfoWithScheme('dpop', tokens.access_token, dpopKey);
    expect(lowerCase.status).toBe(200);
    expect(((await lowerCase.json()) as { sub?: unknown }).sub).toEqual(expect.any(String));
  });

  test.each([
    ['ensure-dpopproof-with-iat-10seconds-before-succeeds', -10],
    ['ensure-dpopproof-with-iat-10seconds-after-succeeds', 10],
  ])(`${MODULE}%s`, async (_module, shift) => {
    const dpopKey = await newDpopKey();
    const shifted = dpopHandleWith(dpopKey, (payload) => {
      payload.iat = Number(payload.iat) + shift;
    });
    const tokens = await tokensFor(dpopKey, shifted);
    expect(tokens.token_type).toBe('dpop');
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck, {
      DPoP: shifted,
    });
    expect(userinfo.sub).toEqual(expect.any(String));
  });

  test(`${MODULE}check-dpop-proof-nbf-exp`, async () => {
    const dpopKey = await newDpopKey();
    const withNbfExp = dpopHandleWith(dpopKey, (payload) => {
      const now = Math.floor(Date.now() / 1000);
      payload.nbf = now;
      payload.exp = now + 300;
    });
    const tokens = await tokensFor(dpopKey, withNbfExp);
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck, {
      DPoP: withNbfExp,
    });
    expect(userinfo.sub).toEqual(expect.any(String));
  });

  test(`${MODULE}ensure-mismatched-dpop-jkt-fails`, async () => {
    // dpop_jkt names one key, the proof at PAR is signed by another.
    const refused = await oauthError(
      pushedAuthorizationRequest(config, await newDpopKey(), { dpop_jkt: (await newDpopKey()).thumbprint }),
    );
    expect(refused).toEqual({ status: 400, error: 'invalid_request' });
  });

  test(`${MODULE}ensure-token-endpoint-fails-with-mismatched-dpop-jkt`, async () => {
    // The code is bound through dpop_jkt alone; a proof by another key cannot redeem it.
    const request = await pushedAuthorizationRequest(config, undefined, {
      dpop_jkt: (await newDpopKey()).thumbprint,
    });
    const callback = await customerApproves(request);
    const refused = await oauthError(exchange(request, callback, dpopHandle(config, await newDpopKey())));
    expect(refused).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test(`${MODULE}ensure-dpopproof-at-par-endpoint-binding-success`, async () => {
    const dpopKey = await newDpopKey();
    const tokens = await tokensFor(dpopKey);
    expect(tokens.token_type).toBe('dpop');
  });

  test(`${MODULE}ensure-dpop-auth-code-binding-success`, async () => {
    const dpopKey = await newDpopKey();
    const request = await pushedAuthorizationRequest(config, undefined, { dpop_jkt: dpopKey.thumbprint });
    const tokens = await exchange(request, await customerApproves(request), dpopHandle(config, dpopKey));
    expect(tokens.token_type).toBe('dpop');
  });
});

test('an app whose key is Ed25519 authenticates and binds its tokens under the name EdDSA', async () => {
  const edApp = await registerFapiApp(passbook, 'EdDSA', 'Ed Payments');
  const edConfig = await fapiConfiguration(passbook, edApp);
  const dpopKey = await newDpopKey('EdDSA');
  const request = await pushedAuthorizationRequest(edConfig, dpopKey);
  const tokens = await exchange(
    request,
    await customerApproves(request),
    dpopHandle(edConfig, dpopKey),
    {},
    edConfig,
  );
  expect(tokens.token_type).toBe('dpop');
});
