import { SignJWT, base64url, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
  type TestCustomer,
} from '../support/passbook.ts';
import { authorizationRequest, completeFlow } from '../support/third-party-app.ts';

/** Checklist J31-J33: OpenID Connect RP-initiated logout at the end-session endpoint. */

const passbook = useTestPassbook();

/** Every address of the apps in this file: the browser stops at any of them instead of fetching it. */
const APP_ORIGIN = 'https://app.example';
const POST_LOGOUT_URI = `${APP_ORIGIN}/signed-out`;
const POST_LOGOUT_URI_WITH_QUERY = `${APP_ORIGIN}/signed-out?from=passbook`;
const ATTACKER_ORIGIN = 'https://attacker.example';

function appWithLogout(overrides: { name?: string } = {}) {
  return registerTestApp(passbook, {
    postLogoutRedirectUris: [POST_LOGOUT_URI, POST_LOGOUT_URI_WITH_QUERY],
    ...overrides,
  });
}

function newBrowser(): CustomerAgent {
  return new CustomerAgent([APP_ORIGIN, ATTACKER_ORIGIN]);
}

async function sessionRows(customer: TestCustomer): Promise<number> {
  const rows = await passbook.knex('oidc_models').where({ kind: 'Session', customer_id: customer.id });
  return rows.length;
}

interface RecordedResponse {
  method: string;
  url: string;
  status: number;
  location: string | null;
  setCookies: string[];
}

/** Runs the work and records every HTTP response the browser received meanwhile, redirects included. */
async function recordingResponses<T>(
  work: () => Promise<T>,
): Promise<{ result: T; seen: RecordedResponse[] }> {
  const original = globalThis.fetch;
  const seen: RecordedResponse[] = [];
  globalThis.fetch = async (input, init) => {
    const response = await original(input, init);
    seen.push({
      method: init?.method ?? 'GET',
      url: input instanceof Request ? input.url : String(input),
      status: response.status,
      location: response.headers.get('location'),
      setCookies: response.headers.getSetCookie(),
    });
    return response;
  };
  try {
    return { result: await work(), seen };
  } finally {
    globalThis.fetch = original;
  }
}

/** A browser asks for HTML; without it the provider answers errors at this endpoint as JSON. */
function openAsBrowser(agent: CustomerAgent, url: string | URL): Promise<Page> {
  return agent.open(String(url), { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
}

function logoutForm(page: Page) {
  return page.document.querySelector('form[id="op.logoutForm"]');
}

/** The customer presses "Yes, sign me out" on the bank's confirmation page. */
function confirmLogout(agent: CustomerAgent, page: Page): Promise<Page> {
  return agent.submit(page, '/session/end/confirm', { logout: 'yes' });
}

/**
 * The whole logout as a browser lives it: open the app's logout URL and, when the bank asks,
 * confirm. Returns the last page and every response on the way.
 */
async function logOut(agent: CustomerAgent, url: string | URL) {
  return recordingResponses(async () => {
    const first = await openAsBrowser(agent, url);
    return logoutForm(first) ? confirmLogout(agent, first) : first;
  });
}

/** The authorization that needs no screen: a live session answers with a code, none with login_required. */
async function silentAuthorization(agent: CustomerAgent, config: oidc.Configuration) {
  const request = await authorizationRequest(config, 'openid', { prompt: 'none' });
  const page = await agent.open(request.url.href);
  return { request, callback: new URL(page.url) };
}

function idTokenOf(tokens: { id_token?: string }): string {
  if (!tokens.id_token) throw new Error('no ID token was issued');
  return tokens.id_token;
}

function expectSignedOutPage(page: Page): void {
  expect(page.url.startsWith(`${passbook.issuer}/session/end/success`)).toBe(true);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  expect(page.body).toMatch(/signed out/i);
}

/** No response sent the browser to any app: every Location stayed on the bank. */
function expectNoRedirectToAnApp(seen: RecordedResponse[]): void {
  const locations = seen.flatMap((response) => (response.location ? [response.location] : []));
  for (const location of locations) {
    expect(new URL(location, passbook.issuer).origin).toBe(passbook.issuer);
  }
}

/** What an invalid logout request may end at: the bank's error page or its signed-out page, on the bank. */
function expectErrorOrSignedOutPage(page: Page): void {
  expect(new URL(page.url).origin).toBe(passbook.issuer);
  expect([200, 400]).toContain(page.status);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  expect(page.body).toMatch(page.status === 400 ? /Something went wrong/ : /signed out/i);
}

describe('J31: oidcc-rp-initiated-logout', () => {
  test('a valid id_token_hint and registered post_logout_redirect_uri end the session and return with the state', async () => {
    const customer = await createTestCustomer(passbook.knex, 'Lola Logout');
    const app = await appWithLogout();
    const agent = newBrowser();
    const { config, tokens } = await completeFlow(passbook, app, customer, 'openid profile', agent);

    // The session is live: a silent authorization gets a code, and there is one session row.
    const before = await silentAuthorization(agent, config);
    expect(before.callback.searchParams.get('code')).toBeTruthy();
    expect(await sessionRows(customer)).toBe(1);

    const state = oidc.randomState();
    const logoutUrl = oidc.buildEndSessionUrl(config, {
      id_token_hint: idTokenOf(tokens),
      post_logout_redirect_uri: POST_LOGOUT_URI,
      state,
    });
    const confirmation = await openAsBrowser(agent, logoutUrl);
    expect(confirmation.status).toBe(200);
    expect(logoutForm(confirmation)?.getAttribute('action')).toContain('/session/end/confirm');
    expect(confirmation.body).toContain('Yes, sign me out');
    // Showing the question signs nobody out.
    expect(await sessionRows(customer)).toBe(1);

    const { result: landing, seen } = await recordingResponses(() => confirmLogout(agent, confirmation));

    const back = new URL(landing.url);
    expect(`${back.origin}${back.pathname}`).toBe(POST_LOGOUT_URI);
    expect(back.searchParams.get('state')).toBe(state);
    const ending = seen.find((response) => response.method === 'POST');
    expect(ending?.url).toContain('/session/end/confirm');
    expect(ending?.status).toBe(303);
    expect(ending?.location).toBe(landing.url);
    const cleared = ending?.setCookies.find((line) => line.startsWith('passbook_session='));
    expect(cleared).toMatch(/^passbook_session=;/);
    expect(cleared).toMatch(/expires=Thu, 01 Jan 1970 00:00:00 GMT/i);

    expect(await sessionRows(customer)).toBe(0);

    const after = await silentAuthorization(agent, config);
    expect(`${after.callback.origin}${after.callback.pathname}`).toBe('https://app.example/callback');
    expect(after.callback.searchParams.get('error')).toBe('login_required');
    expect(after.callback.searchParams.get('state')).toBe(after.request.state);
    expect(after.callback.searchParams.get('iss')).toBe(passbook.issuer);
    expect(after.callback.searchParams.has('code')).toBe(false);
  });

  test('a registered post_logout_redirect_uri that has a query keeps it, and the state is added', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await appWithLogout();
    const agent = newBrowser();
    const { config, tokens } = await completeFlow(passbook, app, customer, 'openid', agent);
    const state = oidc.randomState();

    const { result: landing } = await logOut(
      agent,
      oidc.buildEndSessionUrl(config, {
        id_token_hint: idTokenOf(tokens),
        post_logout_redirect_uri: POST_LOGOUT_URI_WITH_QUERY,
        state,
      }),
    );

    const back = new URL(landing.url);
    expect(`${back.origin}${back.pathname}`).toBe(POST_LOGOUT_URI);
    expect(back.searchParams.get('from')).toBe('passbook');
    expect(back.searchParams.get('state')).toBe(state);
    expect(await sessionRows(customer)).toBe(0);
  });

  test('POST at the end-session endpoint is refused with 405 and the session survives', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await appWithLogout();
    const agent = newBrowser();
    const { config, tokens } = await completeFlow(passbook, app, customer, 'openid', agent);
    const endpoint = config.serverMetadata().end_session_endpoint;
    if (!endpoint) throw new Error('discovery has no end_session_endpoint');

    const page = await agent.open(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        id_token_hint: idTokenOf(tokens),
        post_logout_redirect_uri: POST_LOGOUT_URI,
        state: 'posted',
      }).toString(),
    });

    expect(page.status).toBe(405);
    expect(page.headers.get('allow')).toBe('GET');
    expect(page.url).toBe(endpoint);
    expect(await sessionRows(customer)).toBe(1);
  });
});

describe('J32: logout without a way back to an app ends at the bank’s signed-out page', () => {
  const cases: [string, (config: oidc.Configuration, idToken: string, endpoint: string) => string][] = [
    ['no parameters at all', (_config, _idToken, endpoint) => endpoint],
    ['only a state', (_config, _idToken, endpoint) => `${endpoint}?state=only-state`],
    [
      'a client_id and a state (as openid-client sends them)',
      (config) => {
        return oidc.buildEndSessionUrl(config, { state: 'client-state' }).href;
      },
    ],
    [
      'an id_token_hint and a state but no post_logout_redirect_uri',
      (config, idToken) => {
        return oidc.buildEndSessionUrl(config, { id_token_hint: idToken, state: 'hint-state' }).href;
      },
    ],
  ];

  test.each(cases)('%s', async (_name, logoutUrl) => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await appWithLogout();
    const agent = newBrowser();
    const { config, tokens } = await completeFlow(passbook, app, customer, 'openid', agent);
    const endpoint = config.serverMetadata().end_session_endpoint;
    if (!endpoint) throw new Error('discovery has no end_session_endpoint');
    expect(await sessionRows(customer)).toBe(1);

    const confirmation = await openAsBrowser(agent, logoutUrl(config, idTokenOf(tokens), endpoint));
    expect(confirmation.status).toBe(200);
    expect(logoutForm(confirmation)).not.toBeNull();
    const { result: page, seen } = await recordingResponses(() => confirmLogout(agent, confirmation));

    expectSignedOutPage(page);
    expectNoRedirectToAnApp(seen);
    expect(await sessionRows(customer)).toBe(0);
    const after = await silentAuthorization(agent, config);
    expect(after.callback.searchParams.get('error')).toBe('login_required');
  });
});

describe('J33: no redirect to an address the app did not register, or on a hint the bank did not issue for it', () => {
  /**
   * Each case first sends the bad request, then shows that the same customer, session and app
   * with the genuine hint and registered address do get back to the app: the refusal was for
   * the one thing that was wrong.
   */
  async function signedInWithApp() {
    const customer = await createTestCustomer(passbook.knex);
    const app = await appWithLogout();
    const agent = newBrowser();
    const flow = await completeFlow(passbook, app, customer, 'openid', agent);
    return { customer, app, agent, config: flow.config, idToken: idTokenOf(flow.tokens) };
  }

  async function expectGenuineLogoutReturnsToApp(
    agent: CustomerAgent,
    config: oidc.Configuration,
    idToken: string,
  ): Promise<void> {
    const state = oidc.randomState();
    const { result: landing } = await logOut(
      agent,
      oidc.buildEndSessionUrl(config, {
        id_token_hint: idToken,
        post_logout_redirect_uri: POST_LOGOUT_URI,
        state,
      }),
    );
    expect(landing.url).toBe(`${POST_LOGOUT_URI}?state=${state}`);
  }

  test.each([
    ['an unregistered path', `${APP_ORIGIN}/elsewhere`],
    ['another host', `${ATTACKER_ORIGIN}/signed-out`],
    ['a registered URI with a query added', `${POST_LOGOUT_URI}?next=${encodeURIComponent(ATTACKER_ORIGIN)}`],
    ['a registered URI with its query changed', `${APP_ORIGIN}/signed-out?from=attacker`],
    ['a registered URI with its query extended', `${POST_LOGOUT_URI_WITH_QUERY}&next=x`],
    ['a registered URI with a trailing slash', `${POST_LOGOUT_URI}/`],
  ])('post_logout_redirect_uri: %s', async (_name, badUri) => {
    const { customer, agent, config, idToken } = await signedInWithApp();

    const { result: page, seen } = await logOut(
      agent,
      oidc.buildEndSessionUrl(config, {
        id_token_hint: idToken,
        post_logout_redirect_uri: badUri,
        state: 'bad',
      }),
    );

    expectErrorOrSignedOutPage(page);
    expectNoRedirectToAnApp(seen);
    expect(seen.some((response) => response.location?.startsWith(new URL(badUri).origin))).toBe(false);
    if (page.status === 400) expect(await sessionRows(customer)).toBe(1);

    await expectGenuineLogoutReturnsToApp(agent, config, idToken);
  });

  async function expectRefusedHint(
    customer: TestCustomer,
    agent: CustomerAgent,
    config: oidc.Configuration,
    hint: string,
  ) {
    const { result: page, seen } = await logOut(
      agent,
      oidc.buildEndSessionUrl(config, {
        id_token_hint: hint,
        post_logout_redirect_uri: POST_LOGOUT_URI,
        state: 'x',
      }),
    );
    expectErrorOrSignedOutPage(page);
    expectNoRedirectToAnApp(seen);
    if (page.status === 400) expect(await sessionRows(customer)).toBe(1);
  }

  test('an unsigned hint (alg none) with the genuine claims', async () => {
    const { customer, agent, config, idToken } = await signedInWithApp();
    const unsigned = [
      base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' })),
      base64url.encode(JSON.stringify(decodeJwt(idToken))),
      '',
    ].join('.');

    await expectRefusedHint(customer, agent, config, unsigned);

    await expectGenuineLogoutReturnsToApp(agent, config, idToken);
  });

  test('a hint with the genuine claims and key id, signed by a key that is not the bank’s', async () => {
    const { customer, agent, config, idToken } = await signedInWithApp();
    const { alg, kid } = decodeProtectedHeader(idToken);
    expect(alg).toBe('RS256');
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT(decodeJwt(idToken))
      .setProtectedHeader({ alg: 'RS256', ...(kid ? { kid } : {}) })
      .sign(privateKey);

    await expectRefusedHint(customer, agent, config, forged);

    await expectGenuineLogoutReturnsToApp(agent, config, idToken);
  });

  test('another app’s ID token, sent with this app’s client_id and redirect', async () => {
    const { customer, agent, config, idToken } = await signedInWithApp();
    const other = await appWithLogout({ name: 'Other App' });
    const { tokens: otherTokens } = await completeFlow(passbook, other, customer, 'openid', agent);
    const otherIdToken = idTokenOf(otherTokens);
    expect(decodeJwt(otherIdToken).aud).toBe(other.client_id);

    await expectRefusedHint(customer, agent, config, otherIdToken);

    await expectGenuineLogoutReturnsToApp(agent, config, idToken);
  });

  test('another app’s ID token with this app’s redirect and no client_id', async () => {
    const { customer, agent, config, idToken, app } = await signedInWithApp();
    const other = await registerTestApp(passbook, {
      name: 'Other App',
      postLogoutRedirectUris: [`${APP_ORIGIN}/other-signed-out`],
    });
    const { tokens: otherTokens } = await completeFlow(passbook, other, customer, 'openid', agent);
    const endpoint = config.serverMetadata().end_session_endpoint;
    const url = new URL(String(endpoint));
    url.search = new URLSearchParams({
      id_token_hint: idTokenOf(otherTokens),
      post_logout_redirect_uri: POST_LOGOUT_URI,
      state: 'x',
    }).toString();
    expect(app.metadata.post_logout_redirect_uris).toContain(POST_LOGOUT_URI);

    const { result: page, seen } = await logOut(agent, url);

    expectErrorOrSignedOutPage(page);
    expectNoRedirectToAnApp(seen);
    if (page.status === 400) expect(await sessionRows(customer)).toBe(1);

    await expectGenuineLogoutReturnsToApp(agent, config, idToken);
  });
});
