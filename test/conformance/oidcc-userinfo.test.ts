import * as oidc from 'openid-client';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow, discoverAs } from '../support/third-party-app.ts';

/** Checklist G24-G25: the UserInfo endpoint, its three ways of taking a token, and scope filtering. */

let passbook: TestPassbook;
let customer: TestCustomer;

beforeAll(async () => {
  passbook = await startTestPassbook();
  customer = await createTestCustomer(passbook.knex, 'Uma Userinfo');
});

afterAll(async () => {
  await passbook.close();
});

function userinfoEndpoint(config: oidc.Configuration): string {
  const endpoint = config.serverMetadata().userinfo_endpoint;
  if (!endpoint) throw new Error('discovery has no userinfo_endpoint');
  return endpoint;
}

/** Signs in through a fresh app with these scopes; returns what the app holds afterwards. */
async function signedInWith(scope: string) {
  const app = await registerTestApp(passbook);
  const { config, tokens } = await completeFlow(passbook, app, customer, scope);
  const idTokenSub = tokens.claims()?.sub;
  if (!idTokenSub) throw new Error('no ID token sub');
  return { config, accessToken: tokens.access_token, idTokenSub };
}

async function expectJson(response: Response): Promise<Record<string, unknown>> {
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  return (await response.json()) as Record<string, unknown>;
}

describe('G24: oidcc-userinfo-get, -post-header, -post-body', () => {
  test('oidcc-userinfo-get: GET with a bearer header returns JSON whose sub is the ID token sub', async () => {
    const { config, accessToken, idTokenSub } = await signedInWith('openid profile');
    const userinfo = await oidc.fetchUserInfo(config, accessToken, oidc.skipSubjectCheck);
    expect(userinfo.sub).toBe(idTokenSub);
    expect(userinfo.sub).toBe(customer.id);
  });

  test('oidcc-userinfo-post-header: POST with a bearer header', async () => {
    const { config, accessToken, idTokenSub } = await signedInWith('openid profile');
    const response = await fetch(userinfoEndpoint(config), {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}` },
    });
    const userinfo = await expectJson(response);
    expect(userinfo.sub).toBe(idTokenSub);
  });

  test('oidcc-userinfo-post-body: POST with access_token in a form body', async () => {
    const { config, accessToken, idTokenSub } = await signedInWith('openid profile');
    const response = await fetch(userinfoEndpoint(config), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ access_token: accessToken }).toString(),
    });
    const userinfo = await expectJson(response);
    expect(userinfo.sub).toBe(idTokenSub);
  });
});

/** An app that has only read the discovery document. */
async function discoveredOnly(): Promise<oidc.Configuration> {
  return discoverAs(passbook, await registerTestApp(passbook));
}

describe('G24: requests without a usable token', () => {
  test('no token at all answers 401 with a Bearer challenge', async () => {
    const config = await discoveredOnly();
    const response = await fetch(userinfoEndpoint(config));
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer\b/i);
  });

  test('a garbage token answers 401 with error="invalid_token"', async () => {
    const config = await discoveredOnly();
    const response = await fetch(userinfoEndpoint(config), {
      headers: { authorization: 'Bearer not-a-real-token-at-all-0123456789abcdef' },
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer\b.*error="invalid_token"/i);
  });

  test('a garbage token is refused through the client library too', async () => {
    const config = await discoveredOnly();
    const refused = await oidc
      .fetchUserInfo(config, 'garbage-token-garbage-token', oidc.skipSubjectCheck)
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(refused).toBeInstanceOf(oidc.WWWAuthenticateChallengeError);
    expect((refused as oidc.WWWAuthenticateChallengeError).status).toBe(401);
  });
});

describe('G25: oidcc-scope-profile, -email, -all', () => {
  test('oidcc-scope-profile: profile claims come back and no email', async () => {
    const { config, accessToken } = await signedInWith('openid profile');
    const userinfo = await oidc.fetchUserInfo(config, accessToken, customer.id);
    expect(userinfo).toMatchObject({
      sub: customer.id,
      name: 'Uma Userinfo',
      preferred_username: customer.username,
    });
    expect(typeof userinfo.updated_at).toBe('number');
    expect(userinfo).not.toHaveProperty('email');
    expect(userinfo).not.toHaveProperty('email_verified');
  });

  test('oidcc-scope-email: email claims come back and no name', async () => {
    const { config, accessToken } = await signedInWith('openid email');
    const userinfo = await oidc.fetchUserInfo(config, accessToken, customer.id);
    expect(userinfo).toMatchObject({ sub: customer.id, email: customer.email });
    expect(typeof userinfo.email_verified).toBe('boolean');
    expect(userinfo).not.toHaveProperty('name');
    expect(userinfo).not.toHaveProperty('preferred_username');
    expect(userinfo).not.toHaveProperty('updated_at');
  });

  test('oidcc-scope-all: every supported identity scope releases its claims', async () => {
    const { config, accessToken } = await signedInWith('openid profile email');
    const userinfo = await oidc.fetchUserInfo(config, accessToken, customer.id);
    expect(userinfo).toMatchObject({
      sub: customer.id,
      name: 'Uma Userinfo',
      preferred_username: customer.username,
      email: customer.email,
    });
    expect(typeof userinfo.updated_at).toBe('number');
    expect(typeof userinfo.email_verified).toBe('boolean');
  });

  test('only openid: nothing but sub', async () => {
    const { config, accessToken } = await signedInWith('openid');
    const userinfo = await oidc.fetchUserInfo(config, accessToken, customer.id);
    expect(Object.keys(userinfo)).toEqual(['sub']);
  });
});
