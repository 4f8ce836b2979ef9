import { UnsecuredJWT } from 'jose';
import type * as oidc from 'openid-client';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
  type TestCustomer,
} from '../support/passbook.ts';
import {
  authorizationRequest,
  discoverAs,
  exchangeCode,
  type AuthorizationRequest,
} from '../support/third-party-app.ts';

const passbook = useTestPassbook();

const SCOPE = 'openid profile';
const SECOND_REDIRECT_URI = 'https://app.example/other-callback';

async function newApp() {
  const app = await registerTestApp(passbook, { redirectUris: [TEST_REDIRECT_URI, SECOND_REDIRECT_URI] });
  return { app, config: await discoverAs(passbook, app) };
}

function expectSignInPage(page: Page): void {
  expect(page.status).toBe(200);
  expect(new URL(page.url).pathname).toMatch(/^\/interaction\//);
  expect(page.document.querySelector('input[name="password"]')).not.toBeNull();
}

/** Signs in and consents from the sign-in page, then redeems the code as the app does. */
async function finishFlow(
  agent: CustomerAgent,
  signInPage: Page,
  customer: TestCustomer,
  config: oidc.Configuration,
  request: AuthorizationRequest,
) {
  const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
  const callback = await agent.consent(consentPage, 'allow');
  expect(callback.url.startsWith(`${TEST_REDIRECT_URI}?`)).toBe(true);
  const tokens = await exchangeCode(config, callback.url, request);
  expect(tokens.claims()?.sub).toBe(customer.id);
}

describe('the authorization endpoint tolerates optional and unknown parameters', () => {
  test.each([
    ['an unknown extra parameter', { x_unknown_extension: 'whatever' }],
    ['display=page', { display: 'page' }],
    ['display=popup', { display: 'popup' }],
    ['login_hint', { login_hint: 'someone@example.com' }],
    ['ui_locales', { ui_locales: 'fr-CA fr en' }],
    ['claims_locales', { claims_locales: 'de en' }],
    ['acr_values', { acr_values: 'urn:mace:incommon:iap:silver' }],
  ])('a request with %s shows the sign-in page and ends with a code', async (_label, extra) => {
    const customer = await createTestCustomer(passbook.knex);
    const { config } = await newApp();
    const request = await authorizationRequest(config, SCOPE, extra);
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const signInPage = await agent.open(request.url.href);
    expectSignInPage(signInPage);
    await finishFlow(agent, signInPage, customer, config, request);
  });

  test('login_hint pre-fills the username on the sign-in page', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const { config } = await newApp();
    const request = await authorizationRequest(config, SCOPE, { login_hint: customer.username });
    const signInPage = await new CustomerAgent([TEST_REDIRECT_URI]).open(request.url.href);
    expect(signInPage.document.querySelector('input[name="username"]')?.getAttribute('value')).toBe(
      customer.username,
    );
  });

  test('parameters in reverse order show the sign-in page and end with a code', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const { config } = await newApp();
    const request = await authorizationRequest(config, SCOPE);
    const reversed = new URL(request.url.href);
    reversed.search = new URLSearchParams([...request.url.searchParams].reverse()).toString();
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const signInPage = await agent.open(reversed.href);
    expectSignInPage(signInPage);
    await finishFlow(agent, signInPage, customer, config, request);
  });
});

describe('oidcc-ensure-post-request-succeeds', () => {
  // Deliberately not supported (see test/conformance/README.md): POST needs a SameSite=None session cookie.
  test('the authorization request sent as a POST form is refused with 405 and an error page, and nothing is stored', async () => {
    const { app, config } = await newApp();
    const request = await authorizationRequest(config, SCOPE);
    const response = await fetch(`${request.url.origin}${request.url.pathname}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: request.url.searchParams.toString(),
      redirect: 'manual',
    });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET');
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await response.text()).toContain('method_not_allowed');
    const interactions = await passbook
      .knex('oidc_models')
      .where({ kind: 'Interaction' })
      .whereRaw("payload->'params'->>'client_id' = ?", [app.client_id]);
    expect(interactions).toEqual([]);
  });
});

describe('oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported', () => {
  test('an unsigned request object is refused with request_not_supported, or processed with its own redirect_uri', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const { app, config } = await newApp();
    const request = await authorizationRequest(config, SCOPE, { redirect_uri: SECOND_REDIRECT_URI });
    const requestObject = new UnsecuredJWT({
      ...Object.fromEntries(request.url.searchParams),
      iss: app.client_id,
      aud: passbook.issuer,
    })
      .setIssuedAt()
      .setExpirationTime('5m')
      .encode();
    const url = new URL(request.url.href);
    url.search = new URLSearchParams({
      client_id: app.client_id,
      response_type: 'code',
      scope: SCOPE,
      redirect_uri: TEST_REDIRECT_URI,
      state: request.state,
      request: requestObject,
    }).toString();

    const response = await fetch(url, { redirect: 'manual' });
    expect([302, 303]).toContain(response.status);
    const location = new URL(response.headers.get('location') ?? '', passbook.issuer);
    const metadata = config.serverMetadata();

    if (location.pathname.startsWith('/interaction/')) {
      expect(metadata.request_parameter_supported).toBe(true);
      const agent = new CustomerAgent([TEST_REDIRECT_URI, SECOND_REDIRECT_URI]);
      const signInPage = await agent.open(url.href);
      const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
      const callback = await agent.consent(consentPage, 'allow');
      expect(callback.url.startsWith(`${SECOND_REDIRECT_URI}?`)).toBe(true);
      expect(new URL(callback.url).searchParams.get('code')).toBeTruthy();
    } else {
      expect(metadata.request_parameter_supported).not.toBe(true);
      expect(location.href.startsWith(`${TEST_REDIRECT_URI}?`)).toBe(true);
      expect(location.searchParams.get('error')).toBe('request_not_supported');
      expect(location.searchParams.get('state')).toBe(request.state);
      expect(location.searchParams.get('iss')).toBe(passbook.issuer);
      expect(location.searchParams.has('code')).toBe(false);
    }
  });
});
