import * as oidc from 'openid-client';
import { CustomerAgent } from '../support/customer-agent.ts';
import {
  basicAuthorization,
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestPassbook,
} from '../support/passbook.ts';
import {
  authorizationRequest,
  customerAllows,
  discoverAs,
  exchangeCode,
} from '../support/third-party-app.ts';

let passbook: TestPassbook;
let tokenEndpoint: string;

beforeAll(async () => {
  passbook = await startTestPassbook();
  const metadata = (await (await fetch(`${passbook.issuer}/.well-known/openid-configuration`)).json()) as {
    token_endpoint: string;
  };
  tokenEndpoint = metadata.token_endpoint;
});

afterAll(async () => {
  await passbook.close();
});

const SCOPE = 'openid profile';

async function newAppWithCode() {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const request = await authorizationRequest(config, SCOPE);
  const callbackUrl = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  const code = new URL(callbackUrl).searchParams.get('code') ?? '';
  return { app, config, request, callbackUrl, code };
}

function discoverWith(app: { client_id: string; client_secret?: string }, auth: oidc.ClientAuth) {
  return oidc.discovery(new URL(passbook.issuer), app.client_id, { client_secret: app.client_secret }, auth, {
    execute: [oidc.allowInsecureRequests],
  });
}

/** Keeps a copy of every response the token endpoint gives this configuration. */
function recordTokenResponses(config: oidc.Configuration): Response[] {
  const responses: Response[] = [];
  config[oidc.customFetch] = async (url, options) => {
    const response = await fetch(url, options);
    if (url === tokenEndpoint) responses.push(response.clone());
    return response;
  };
  return responses;
}

function postToToken(form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
}

function basicAuth(clientId: string, secret: string): Record<string, string> {
  return { authorization: basicAuthorization({ client_id: clientId, client_secret: secret }) };
}

async function expectOAuthError(response: Response, status: number, error: string): Promise<void> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/json\b/);
  const body = (await response.json()) as { error?: unknown };
  expect(body.error).toBe(error);
}

async function grantError(grant: Promise<unknown>): Promise<{ status: number; error: string }> {
  try {
    await grant;
  } catch (error) {
    if (error instanceof oidc.ResponseBodyError) return { status: error.status, error: error.error };
    throw error;
  }
  throw new Error('the token endpoint issued tokens');
}

describe('token endpoint: redeeming a code', () => {
  test.each([
    ['client_secret_basic', oidc.ClientSecretBasic],
    ['client_secret_post', oidc.ClientSecretPost],
  ])(
    'with %s answers 200 JSON, no-store, a Bearer access token with expires_in, and an ID token',
    async (_method, auth) => {
      const { app, request, callbackUrl } = await newAppWithCode();
      const config = await discoverWith(app, auth(app.client_secret));
      const responses = recordTokenResponses(config);
      const tokens = await exchangeCode(config, callbackUrl, request);

      expect(responses).toHaveLength(1);
      const [response] = responses;
      expect(response?.status).toBe(200);
      expect(response?.headers.get('content-type')).toMatch(/^application\/json\b/);
      expect(response?.headers.get('cache-control')).toMatch(/\bno-store\b/);
      expect(tokens.access_token).toBeTruthy();
      expect(tokens.token_type.toLowerCase()).toBe('bearer');
      expect(Number.isInteger(tokens.expires_in)).toBe(true);
      expect(tokens.expires_in).toBeGreaterThan(0);
      expect(tokens.id_token).toBeTruthy();
      expect(tokens.claims()?.aud).toContain(app.client_id);
    },
  );
});

describe('token endpoint: errors', () => {
  test.each(['/token', '/token/introspection', '/token/revocation', '/request'])(
    '%s answers RFC JSON even to a caller that prefers HTML',
    async (path) => {
      const response = await fetch(`${passbook.issuer}${path}`, {
        method: 'POST',
        headers: {
          accept: 'text/html,application/xhtml+xml',
          'content-type': 'application/x-www-form-urlencoded',
          ...basicAuth('no-such-client', 'whatever'),
        },
        body: 'grant_type=authorization_code&token=x',
      });
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(response.headers.get('content-type')).toMatch(/^application\/json\b/);
      expect(((await response.json()) as { error?: unknown }).error).toBe('invalid_client');
    },
  );

  test('a wrong client secret in the Authorization header gets 401 invalid_client and a Basic challenge', async () => {
    const { app, request, code } = await newAppWithCode();
    const response = await postToToken(
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: TEST_REDIRECT_URI,
        code_verifier: request.codeVerifier,
      },
      basicAuth(app.client_id, 'not-the-secret'),
    );
    expect(response.headers.get('www-authenticate')).toMatch(/^Basic\b/i);
    await expectOAuthError(response, 401, 'invalid_client');
  });

  test('a wrong client secret in the body gets 401 invalid_client', async () => {
    const { app, request, code } = await newAppWithCode();
    const response = await postToToken({
      grant_type: 'authorization_code',
      code,
      redirect_uri: TEST_REDIRECT_URI,
      code_verifier: request.codeVerifier,
      client_id: app.client_id,
      client_secret: 'not-the-secret',
    });
    await expectOAuthError(response, 401, 'invalid_client');
  });

  test('an unknown client gets 401 invalid_client', async () => {
    const { request, code } = await newAppWithCode();
    const response = await postToToken(
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: TEST_REDIRECT_URI,
        code_verifier: request.codeVerifier,
      },
      basicAuth('no-such-client', 'whatever'),
    );
    await expectOAuthError(response, 401, 'invalid_client');
  });

  test("another app's code gets 400 invalid_grant", async () => {
    const victim = await newAppWithCode();
    const other = await registerTestApp(passbook);
    const otherConfig = await discoverAs(passbook, other);
    const grant = exchangeCode(otherConfig, victim.callbackUrl, victim.request);
    expect(await grantError(grant)).toEqual({ status: 400, error: 'invalid_grant' });
  });

  test('a code that was never issued gets 400 invalid_grant', async () => {
    const { app, request } = await newAppWithCode();
    const response = await postToToken(
      {
        grant_type: 'authorization_code',
        code: 'bm90LWEtcmVhbC1jb2RlLWF0LWFsbC0xMjM0NTY3ODkw',
        redirect_uri: TEST_REDIRECT_URI,
        code_verifier: request.codeVerifier,
      },
      basicAuth(app.client_id, app.client_secret ?? ''),
    );
    await expectOAuthError(response, 400, 'invalid_grant');
  });

  test('a redirect_uri other than the one in the authorization request gets 400 invalid_grant', async () => {
    const { app, request, code } = await newAppWithCode();
    const response = await postToToken(
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: 'https://app.example/elsewhere',
        code_verifier: request.codeVerifier,
      },
      basicAuth(app.client_id, app.client_secret ?? ''),
    );
    await expectOAuthError(response, 400, 'invalid_grant');
  });

  test.each(['authorization_cod', 'password', 'urn:example:no-such-grant'])(
    'grant_type=%s gets 400 unsupported_grant_type',
    async (grantType) => {
      const { app, request, code } = await newAppWithCode();
      const response = await postToToken(
        { grant_type: grantType, code, redirect_uri: TEST_REDIRECT_URI, code_verifier: request.codeVerifier },
        basicAuth(app.client_id, app.client_secret ?? ''),
      );
      await expectOAuthError(response, 400, 'unsupported_grant_type');
    },
  );

  test('a request without grant_type gets 400 invalid_request', async () => {
    const { app, request, code } = await newAppWithCode();
    const response = await postToToken(
      { code, redirect_uri: TEST_REDIRECT_URI, code_verifier: request.codeVerifier },
      basicAuth(app.client_id, app.client_secret ?? ''),
    );
    await expectOAuthError(response, 400, 'invalid_request');
  });
});
