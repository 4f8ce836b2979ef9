import * as oidc from 'openid-client';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import { CustomerAgent, type Page } from './customer-agent.ts';
import { TEST_REDIRECT_URI, type TestCustomer, type TestPassbook } from './passbook.ts';
import { nextAuthenticatorCode } from './two-step.ts';

/**
 * What a third-party app does, through a real OAuth client library (openid-client): discovery,
 * the authorization request with PKCE, state and nonce, the code exchange, refresh, UserInfo.
 */

export async function discoverAs(passbook: TestPassbook, app: RegisteredClient): Promise<oidc.Configuration> {
  const auth = app.client_secret ? oidc.ClientSecretBasic(app.client_secret) : oidc.None();
  return oidc.discovery(new URL(passbook.issuer), app.client_id, { client_secret: app.client_secret }, auth, {
    execute: [oidc.allowInsecureRequests],
  });
}

export interface AuthorizationRequest {
  url: URL;
  codeVerifier: string;
  state: string;
  nonce: string;
}

export async function authorizationRequest(
  config: oidc.Configuration,
  scope = 'openid profile email offline_access transactions:read',
  extra: Record<string, string> = {},
): Promise<AuthorizationRequest> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: TEST_REDIRECT_URI,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    // OpenID Connect grants offline_access (a refresh token) only when consent is asked for.
    ...(scope.split(' ').includes('offline_access') ? { prompt: 'consent' } : {}),
    ...extra,
  });
  return { url, codeVerifier, state, nonce };
}

/** The customer's side: open the request, sign in, allow; returns the callback URL the app receives. */
export async function customerAllows(
  agent: CustomerAgent,
  request: AuthorizationRequest,
  customer: TestCustomer,
): Promise<string> {
  let page: Page = await agent.open(request.url.href);
  if (page.url.includes('/interaction/') && page.body.includes('name="password"')) {
    page = await agent.signIn(page, customer.username, customer.password);
  }
  // Two-step verification, at sign-in or as a step-up before payments.
  if (page.url.includes('/interaction/') && /action="[^"]*\/code"/.test(page.body)) {
    if (!customer.authenticatorSecret) throw new Error(`the flow asks for a code:\n${page.body}`);
    page = await agent.submit(page, '/code', {
      code: await nextAuthenticatorCode(customer.authenticatorSecret),
    });
  }
  if (page.url.includes('/interaction/') && page.body.includes('name="decision"')) {
    page = await agent.consent(page, 'allow');
  }
  if (!page.url.startsWith(TEST_REDIRECT_URI)) throw new Error(`flow ended at ${page.url}:\n${page.body}`);
  return page.url;
}

export function exchangeCode(config: oidc.Configuration, callbackUrl: string, request: AuthorizationRequest) {
  return oidc.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: request.codeVerifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
}

/** The whole authorization-code flow, as the app and the customer run it. */
export async function completeFlow(
  passbook: TestPassbook,
  app: RegisteredClient,
  customer: TestCustomer,
  scope?: string,
  agent = new CustomerAgent([TEST_REDIRECT_URI]),
) {
  const config = await discoverAs(passbook, app);
  const request = await authorizationRequest(config, scope);
  const callbackUrl = await customerAllows(agent, request, customer);
  const tokens = await exchangeCode(config, callbackUrl, request);
  return { config, request, callbackUrl, tokens, agent };
}
