import * as oidc from 'openid-client';
import { CustomerAgent, type Page } from './support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from './support/passbook.ts';
import {
  authorizationRequest,
  completeFlow,
  discoverAs,
  exchangeCode,
  type AuthorizationRequest,
} from './support/third-party-app.ts';
import type { RegisteredClient } from '../src/clients/clients.ts';

/**
 * Everything a customer or an app holds lives in PostgreSQL, not in the process: a second
 * instance on the same database and address carries on where the first one stopped.
 */

let first: TestPassbook | undefined;
let second: TestPassbook | undefined;
let issuer: string;
let customer: TestCustomer;
let app: RegisteredClient;

/** Started on instance 1 and left on the sign-in page. */
let pending: {
  agent: CustomerAgent;
  request: AuthorizationRequest;
  config: oidc.Configuration;
  signInPage: Page;
};
/** Completed on instance 1: the refresh token and the browser session it left behind. */
let completed: { agent: CustomerAgent; refreshToken: string; authTime: number };

beforeAll(async () => {
  first = await startTestPassbook();
  issuer = first.issuer;
  customer = await createTestCustomer(first.knex, 'Rita Restart');
  app = await registerTestApp(first);

  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const flow = await completeFlow(first, app, customer, 'openid profile offline_access', agent);
  const refreshToken = flow.tokens.refresh_token;
  if (!refreshToken) throw new Error('instance 1 issued no refresh token');
  const authTime = await authTimeOf(flow.config, agent);
  completed = { agent, refreshToken, authTime };

  // Another app, so that the customer's remembered consent to the first one does not skip the screen.
  const config = await discoverAs(first, await registerTestApp(first, { name: 'Pending App' }));
  const request = await authorizationRequest(config, 'openid profile');
  const pendingAgent = new CustomerAgent([TEST_REDIRECT_URI]);
  const signInPage = await pendingAgent.open(request.url.href);
  if (!signInPage.body.includes('name="password"'))
    throw new Error(`no sign-in page from instance 1:\n${signInPage.body}`);
  pending = { agent: pendingAgent, request, config, signInPage };

  const port = new URL(first.url).port;
  await first.close();
  first = undefined;
  const started = await startTestPassbook({ PORT: port, ISSUER: issuer });
  // The harness reports the port it picked before the override; this instance answers as instance 1 did.
  second = { ...started, issuer };
});

afterAll(async () => {
  await first?.close();
  await second?.close();
});

function secondInstance(): TestPassbook {
  if (!second) throw new Error('instance 2 did not start');
  return second;
}

/** auth_time of a silent authorization through this browser (max_age makes it a required claim). */
async function authTimeOf(config: oidc.Configuration, agent: CustomerAgent): Promise<number> {
  const request = await authorizationRequest(config, 'openid profile', { max_age: '86400' });
  const page = await agent.open(request.url.href);
  if (!page.url.startsWith(TEST_REDIRECT_URI))
    throw new Error(`not a silent authorization: ended at ${page.url}`);
  const tokens = await exchangeCode(config, page.url, request);
  const authTime = tokens.claims()?.auth_time;
  if (typeof authTime !== 'number') throw new Error('no auth_time in the ID token');
  return authTime;
}

describe('a second instance on the same database', () => {
  test('answers as the same issuer', async () => {
    const passbook = secondInstance();
    expect(passbook.url).toBe(issuer);
    const response = await fetch(`${passbook.url}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { issuer?: string }).issuer).toBe(issuer);
  });

  test('completes a sign-in that instance 1 started', async () => {
    secondInstance();
    const { agent, request, config, signInPage } = pending;
    const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
    expect(consentPage.status).toBe(200);
    expect(consentPage.body).toContain('name="decision"');
    const callback = await agent.consent(consentPage, 'allow');
    expect(callback.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
    expect(new URL(callback.url).searchParams.get('iss')).toBe(issuer);

    const tokens = await exchangeCode(config, callback.url, request);
    expect(tokens.claims()?.sub).toBe(customer.id);
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, customer.id);
    expect(userinfo.name).toBe('Rita Restart');
  });

  test('accepts a refresh token that instance 1 issued', async () => {
    const config = await discoverAs(secondInstance(), app);
    const refreshed = await oidc.refreshTokenGrant(config, completed.refreshToken);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(completed.refreshToken);
    expect(refreshed.claims()?.sub).toBe(customer.id);
    const userinfo = await oidc.fetchUserInfo(config, refreshed.access_token, customer.id);
    expect(userinfo.sub).toBe(customer.id);
  });

  test("keeps the customer's session: a new authorization needs no password", async () => {
    const config = await discoverAs(secondInstance(), app);
    const request = await authorizationRequest(config, 'openid profile', { max_age: '86400' });
    const page = await completed.agent.open(request.url.href);
    expect(page.body).not.toContain('name="password"');
    expect(page.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
    const tokens = await exchangeCode(config, page.url, request);
    expect(tokens.claims()?.sub).toBe(customer.id);
    expect(tokens.claims()?.auth_time).toBe(completed.authTime);
  });
});
