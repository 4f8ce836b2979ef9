import type * as oidc from 'openid-client';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  basicAuthorization,
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, customerAllows, discoverAs } from '../support/third-party-app.ts';

/**
 * What the server does with requests no well-behaved app or browser sends: a standard error or a
 * friendly page, never a 500, never internal detail, and nothing stored.
 */

const passbook = useTestPassbook();

const ONE_MEGABYTE = 1024 * 1024;

/** Rows of oidc_models that mention this text anywhere in their payload (a client_id, a username). */
async function rowsMentioning(text: string): Promise<number> {
  const [row] = await passbook
    .knex('oidc_models')
    .whereRaw('strpos(payload::text, ?) > 0', [text])
    .count<{ count: string }[]>({ count: '*' });
  return Number(row?.count);
}

async function sessionsOf(accountId: string): Promise<number> {
  const [row] = await passbook
    .knex('oidc_models')
    .where({ kind: 'Session', customer_id: accountId })
    .count<{ count: string }[]>({ count: '*' });
  return Number(row?.count);
}

/** No stack frames, no exception names, no file paths: nothing for an attacker to read. */
function expectNoInternals(body: string): void {
  expect(body).not.toMatch(/^\s*at\s/m);
  expect(body).not.toMatch(/\bat .+:\d+:\d+/);
  expect(body).not.toMatch(/\w*Error:/);
  expect(body).not.toMatch(/(\/|\\)(src|node_modules|work|home|usr)(\/|\\)/);
  expect(body).not.toMatch(/\.(ts|js|mjs|cjs):\d+/);
}

interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

async function send(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, { ...init, redirect: 'manual' });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

function expectHtmlErrorPage(answer: Answer | Page): void {
  expect(answer.status).toBeGreaterThanOrEqual(400);
  expect(answer.status).toBeLessThan(500);
  expect(answer.headers.get('location')).toBeNull();
  expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
  expect(answer.body).toMatch(/<h1[^>]*>[^<]+<\/h1>/);
  expectNoInternals(answer.body);
}

function expectJsonError(answer: Answer, status: number, errors: string[]): void {
  expect(answer.status).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
  const parsed = JSON.parse(answer.body) as { error?: unknown };
  expect(errors).toContain(parsed.error);
  expectNoInternals(answer.body);
}

/** The error parameters of an authorization response in the query or the fragment. */
function responseParams(location: string): URLSearchParams {
  const url = new URL(location);
  return url.hash.length > 1 ? new URLSearchParams(url.hash.slice(1)) : url.searchParams;
}

/**
 * RFC 6749 4.1.2.1: either a redirect to the app's registered callback carrying a standard error,
 * the state and iss, and no code; or, when the server will not redirect, a 4xx page.
 */
function expectAuthorizationError(answer: Answer, state: string, errors: string[]): void {
  expectNoInternals(answer.body);
  const location = answer.headers.get('location');
  if (answer.status >= 300 && answer.status < 400 && location) {
    expect(location.startsWith(TEST_REDIRECT_URI)).toBe(true);
    const params = responseParams(location);
    expect(errors).toContain(params.get('error'));
    expect(params.get('state')).toBe(state);
    expect(params.get('iss')).toBe(passbook.issuer);
    expect(params.get('code')).toBeNull();
    expect(new URL(location).searchParams.get('code')).toBeNull();
  } else {
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(location).toBeNull();
  }
}

async function appWithConfig() {
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  return { app, config };
}

function endpoint(config: oidc.Configuration, name: 'authorization_endpoint' | 'token_endpoint'): string {
  const url = config.serverMetadata()[name];
  if (!url) throw new Error(`discovery has no ${name}`);
  return url;
}

describe('the authorization endpoint', () => {
  test('an unknown client_id gets an HTML error page and no redirect', async () => {
    const { config } = await appWithConfig();
    const unknownClientId = `no-such-app-${Date.now()}`;
    const request = await authorizationRequest(config, 'openid');
    request.url.searchParams.set('client_id', unknownClientId);

    const answer = await send(request.url.href);

    expectHtmlErrorPage(answer);
    expect(await rowsMentioning(unknownClientId)).toBe(0);
  });

  test('an unknown client_id with an attacker redirect_uri is not redirected there either', async () => {
    const { config } = await appWithConfig();
    const request = await authorizationRequest(config, 'openid');
    request.url.searchParams.set('client_id', `no-such-app-${Date.now()}`);
    request.url.searchParams.set('redirect_uri', 'https://attacker.example/steal');
    expectHtmlErrorPage(await send(request.url.href));
  });

  test('a duplicated scope parameter is an invalid_request, and nothing is stored', async () => {
    const { app, config } = await appWithConfig();
    const request = await authorizationRequest(config, 'openid profile');
    request.url.searchParams.append('scope', 'openid email');

    const answer = await send(request.url.href);

    expectAuthorizationError(answer, request.state, ['invalid_request']);
    expect(await rowsMentioning(app.client_id)).toBe(0);
  });

  test('response_type=token is refused with a standard error, and nothing is stored', async () => {
    const { app, config } = await appWithConfig();
    const request = await authorizationRequest(config, 'openid', { response_type: 'token' });

    const answer = await send(request.url.href);

    expectAuthorizationError(answer, request.state, ['unsupported_response_type', 'unauthorized_client']);
    expect(await rowsMentioning(app.client_id)).toBe(0);
  });

  test('the same app with well-formed parameters does get a sign-in page (control)', async () => {
    const { app, config } = await appWithConfig();
    const request = await authorizationRequest(config, 'openid profile');
    const page = await new CustomerAgent([TEST_REDIRECT_URI]).open(request.url.href);
    expect(page.status).toBe(200);
    expect(page.url).toContain('/interaction/');
    expect(await rowsMentioning(app.client_id)).toBeGreaterThan(0);
  });
});

describe('oversize bodies', () => {
  test('a 1 MB sign-in form gets 413 or 400, a friendly page, and signs nobody in', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const { config } = await appWithConfig();
    const request = await authorizationRequest(config, 'openid');
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const signInPage = await agent.open(request.url.href);
    const action = signInPage.document.querySelector('form[action$="/login"]')?.getAttribute('action');
    const csrf = signInPage.document.querySelector('input[name="csrf"]')?.getAttribute('value');
    if (!action || !csrf) throw new Error(`no sign-in form on ${signInPage.url}`);

    const body = new URLSearchParams({
      csrf,
      username: customer.username,
      password: customer.password,
      padding: 'A'.repeat(ONE_MEGABYTE),
    });
    const answer = await agent.open(new URL(action, signInPage.url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
    });

    expect([400, 413]).toContain(answer.status);
    expectHtmlErrorPage(answer);
    expect(await sessionsOf(customer.id)).toBe(0);
  });

  test('a 1 MB token request gets 413 or 400 as JSON, and issues nothing', async () => {
    const { app, config } = await appWithConfig();
    const answer = await send(endpoint(config, 'token_endpoint'), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basicAuthorization(app),
      },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: 'A'.repeat(ONE_MEGABYTE),
        redirect_uri: TEST_REDIRECT_URI,
      }).toString(),
    });

    expect([400, 413]).toContain(answer.status);
    expectNoInternals(answer.body);
    if (answer.headers.get('content-type')?.startsWith('application/json')) {
      const parsed = JSON.parse(answer.body) as { error?: unknown };
      expect(typeof parsed.error).toBe('string');
    }
    expect(await rowsMentioning(app.client_id)).toBe(0);
  });
});

describe('oversize authorization requests', () => {
  test('a 100 KB query string gets a 4xx, never a 500', async () => {
    const { app, config } = await appWithConfig();
    const request = await authorizationRequest(config, 'openid', { login_hint: 'A'.repeat(100 * 1024) });
    const answer = await send(request.url.href);
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expectNoInternals(answer.body);
    expect(await rowsMentioning(app.client_id)).toBe(0);
  });

  test('a 1 MB authorization request sent as a POST form gets a 4xx, never a 500', async () => {
    const { app, config } = await appWithConfig();
    const request = await authorizationRequest(config, 'openid');
    const fields = new URLSearchParams(request.url.searchParams);
    fields.set('login_hint', 'A'.repeat(ONE_MEGABYTE));
    const answer = await send(endpoint(config, 'authorization_endpoint'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: fields.toString(),
    });
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(answer.headers.get('location')).toBeNull();
    expectNoInternals(answer.body);
    expect(await rowsMentioning(app.client_id)).toBe(0);
  });
});

describe('unknown interactions', () => {
  test('GET /interaction/does-not-exist with no cookies gets a friendly 4xx page', async () => {
    expectHtmlErrorPage(await send(`${passbook.url}/interaction/does-not-exist`));
  });

  test('GET /interaction/does-not-exist from a browser in the middle of a sign-in gets a friendly 4xx page', async () => {
    const { config } = await appWithConfig();
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    await agent.open((await authorizationRequest(config, 'openid')).url.href);
    const page = await agent.open(`${passbook.url}/interaction/does-not-exist`);
    expectHtmlErrorPage(page);
    expect(page.body).not.toContain('name="password"');
  });

  test('a sign-in POST to an interaction that does not exist gets a friendly 4xx page', async () => {
    const answer = await send(`${passbook.url}/interaction/does-not-exist/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=a&password=b&csrf=c',
    });
    expectHtmlErrorPage(answer);
  });
});

describe('malformed token requests', () => {
  async function codeFor(app: { client_id: string }, config: oidc.Configuration) {
    const customer = await createTestCustomer(passbook.knex);
    const request = await authorizationRequest(config, 'openid');
    const callbackUrl = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
    const code = new URL(callbackUrl).searchParams.get('code');
    if (!code) throw new Error(`no code for ${app.client_id}`);
    return { code, codeVerifier: request.codeVerifier };
  }

  function basic(app: { client_id: string; client_secret?: string }): string {
    return basicAuthorization(app);
  }

  async function accessTokensFor(clientId: string): Promise<number> {
    const [row] = await passbook
      .knex('oidc_models')
      .where({ kind: 'AccessToken' })
      .whereRaw("payload->>'clientId' = ?", [clientId])
      .count<{ count: string }[]>({ count: '*' });
    return Number(row?.count);
  }

  test('a JSON body is a 400 JSON error and issues no token, even with a genuine code', async () => {
    const { app, config } = await appWithConfig();
    const { code, codeVerifier } = await codeFor(app, config);
    const answer = await send(endpoint(config, 'token_endpoint'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic(app) },
      body: JSON.stringify({
        grant_type: 'authorization_code',
        code,
        code_verifier: codeVerifier,
        redirect_uri: TEST_REDIRECT_URI,
      }),
    });
    expectJsonError(answer, 400, ['invalid_request']);
    expect(await accessTokensFor(app.client_id)).toBe(0);
  });

  test('no body at all is a 400 JSON error', async () => {
    const { app, config } = await appWithConfig();
    const answer = await send(endpoint(config, 'token_endpoint'), {
      method: 'POST',
      headers: { authorization: basic(app) },
    });
    expectJsonError(answer, 400, ['invalid_request', 'unsupported_grant_type']);
    expect(await accessTokensFor(app.client_id)).toBe(0);
  });

  test('an empty form body is a 400 JSON error', async () => {
    const { app, config } = await appWithConfig();
    const answer = await send(endpoint(config, 'token_endpoint'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(app) },
      body: '',
    });
    expectJsonError(answer, 400, ['invalid_request', 'unsupported_grant_type']);
  });

  test('a form body that is not valid form encoding is a 400 JSON error, not a 500', async () => {
    const { app, config } = await appWithConfig();
    const answer = await send(endpoint(config, 'token_endpoint'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(app) },
      body: 'grant_type=authorization_code&code=%E0%A4%A&redirect_uri=%%%',
    });
    expect(answer.status).toBe(400);
    expectJsonError(answer, 400, ['invalid_request', 'invalid_grant']);
  });
});
