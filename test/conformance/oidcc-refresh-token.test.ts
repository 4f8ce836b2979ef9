import * as oidc from 'openid-client';
import { CustomerAgent } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import {
  authorizationRequest,
  completeFlow,
  customerAllows,
  discoverAs,
  exchangeCode,
} from '../support/third-party-app.ts';

/** Checklist F20-F23: refresh tokens, their rotation and reuse detection. */

let passbook: TestPassbook;
let customer: TestCustomer;

beforeAll(async () => {
  passbook = await startTestPassbook();
  customer = await createTestCustomer(passbook.knex, 'Rory Refresh');
});

afterAll(async () => {
  await passbook.close();
});

const OFFLINE = 'openid profile offline_access';

/** The token endpoint's error response, or a failure when the request succeeded. */
async function oauthError(attempt: Promise<unknown>): Promise<oidc.ResponseBodyError> {
  try {
    await attempt;
  } catch (caught) {
    if (caught instanceof oidc.ResponseBodyError) return caught;
    throw caught;
  }
  throw new Error('expected an OAuth error response, but the request succeeded');
}

/** UserInfo's status for this access token: 200, or the status of the challenge it answered with. */
async function userinfoStatus(config: oidc.Configuration, accessToken: string): Promise<number> {
  try {
    await oidc.fetchUserInfo(config, accessToken, customer.id);
    return 200;
  } catch (caught) {
    if (caught instanceof oidc.WWWAuthenticateChallengeError) return caught.status;
    throw caught;
  }
}

/** Records the last response the library received, so that its headers can be checked. */
function recordResponses(config: oidc.Configuration): { last?: Response } {
  const seen: { last?: Response } = {};
  config[oidc.customFetch] = async (url, options) => {
    const response = await fetch(url, options);
    seen.last = response;
    return response;
  };
  return seen;
}

function requireRefreshToken(tokens: { refresh_token?: string }): string {
  if (!tokens.refresh_token) throw new Error('no refresh token was issued');
  return tokens.refresh_token;
}

describe('F20: offline_access with consent', () => {
  test('gives a refresh token of at least 128 bits', async () => {
    const app = await registerTestApp(passbook);
    const { tokens } = await completeFlow(passbook, app, customer, OFFLINE);
    expect(tokens.refresh_token).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    expect(tokens.scope?.split(' ')).toContain('offline_access');
  });

  test('without offline_access there is no refresh token', async () => {
    const app = await registerTestApp(passbook);
    const { tokens } = await completeFlow(passbook, app, customer, 'openid profile');
    expect(tokens.refresh_token).toBeUndefined();
  });
});

describe('F21: oidcc-refresh-token', () => {
  test('refresh answers 200 with no-store, a new access token and a matching ID token', async () => {
    const app = await registerTestApp(passbook);
    const config = await discoverAs(passbook, app);
    // max_age makes auth_time required in every ID token of the grant, so that it can be compared.
    const request = await authorizationRequest(config, OFFLINE, { max_age: '3600' });
    const callbackUrl = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
    const tokens = await exchangeCode(config, callbackUrl, request);
    const first = tokens.claims();
    if (!first) throw new Error('no ID token from the code exchange');
    const seen = recordResponses(config);

    const refreshed = await oidc.refreshTokenGrant(config, requireRefreshToken(tokens));

    expect(seen.last?.status).toBe(200);
    expect(seen.last?.headers.get('cache-control')).toBe('no-store');
    expect(refreshed.token_type.toLowerCase()).toBe('bearer');
    expect(refreshed.access_token).toBeTruthy();
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed.id_token).toBeTruthy();
    const claims = refreshed.claims();
    expect(typeof first.auth_time).toBe('number');
    expect(claims).toMatchObject({
      iss: first.iss,
      sub: first.sub,
      aud: first.aud,
      auth_time: first.auth_time,
    });
    expect(claims?.sub).toBe(customer.id);
    expect(claims?.iss).toBe(passbook.issuer);
  });

  test('the refreshed access token works at UserInfo', async () => {
    const app = await registerTestApp(passbook);
    const { config, tokens } = await completeFlow(passbook, app, customer, OFFLINE);
    const refreshed = await oidc.refreshTokenGrant(config, requireRefreshToken(tokens));
    const userinfo = await oidc.fetchUserInfo(config, refreshed.access_token, customer.id);
    expect(userinfo).toMatchObject({ sub: customer.id, name: 'Rory Refresh' });
  });
});

describe('F23: rotation and reuse detection', () => {
  test('a refresh rotates the refresh token and the old one stops working', async () => {
    const app = await registerTestApp(passbook);
    const { config, tokens } = await completeFlow(passbook, app, customer, OFFLINE);
    const original = requireRefreshToken(tokens);

    const refreshed = await oidc.refreshTokenGrant(config, original);
    const rotated = requireRefreshToken(refreshed);
    expect(rotated).not.toBe(original);
    expect(rotated).toMatch(/^[A-Za-z0-9_-]{22,}$/);

    const error = await oauthError(oidc.refreshTokenGrant(config, original));
    expect(error.status).toBe(400);
    expect(error.error).toBe('invalid_grant');
  });

  test('the rotated refresh token itself refreshes again', async () => {
    const app = await registerTestApp(passbook);
    const { config, tokens } = await completeFlow(passbook, app, customer, OFFLINE);
    const second = await oidc.refreshTokenGrant(config, requireRefreshToken(tokens));
    const third = await oidc.refreshTokenGrant(config, requireRefreshToken(second));
    expect(third.access_token).not.toBe(second.access_token);
    expect(requireRefreshToken(third)).not.toBe(requireRefreshToken(second));
  });

  test('presenting a rotated-out refresh token revokes the whole grant', async () => {
    const app = await registerTestApp(passbook);
    const { config, tokens } = await completeFlow(passbook, app, customer, OFFLINE);
    const original = requireRefreshToken(tokens);
    const refreshed = await oidc.refreshTokenGrant(config, original);
    const newest = requireRefreshToken(refreshed);
    expect(await userinfoStatus(config, tokens.access_token)).toBe(200);
    expect(await userinfoStatus(config, refreshed.access_token)).toBe(200);

    const reuse = await oauthError(oidc.refreshTokenGrant(config, original));
    expect(reuse.status).toBe(400);
    expect(reuse.error).toBe('invalid_grant');

    const afterwards = await oauthError(oidc.refreshTokenGrant(config, newest));
    expect(afterwards.status).toBe(400);
    expect(afterwards.error).toBe('invalid_grant');
    expect(await userinfoStatus(config, refreshed.access_token)).toBe(401);
    expect(await userinfoStatus(config, tokens.access_token)).toBe(401);
  });
  test('of several refreshes of one token sent at the same instant, exactly one succeeds', async () => {
    const app = await registerTestApp(passbook);
    const { config, tokens } = await completeFlow(passbook, app, customer, OFFLINE);
    const refreshToken = requireRefreshToken(tokens);

    const results = await Promise.allSettled(
      [1, 2, 3].map(() => oidc.refreshTokenGrant(config, refreshToken)),
    );

    const winners = results.filter((result) => result.status === 'fulfilled');
    expect(winners).toHaveLength(1);
    for (const result of results) {
      if (result.status === 'rejected') {
        expect(result.reason).toBeInstanceOf(oidc.ResponseBodyError);
        expect((result.reason as oidc.ResponseBodyError).error).toBe('invalid_grant');
      }
    }
    // The losers stored nothing: the grant's one live refresh token is the winner's.
    const [winner] = winners;
    const grant: { grant_id: string } | undefined = await passbook
      .knex('oidc_models')
      .where({ kind: 'RefreshToken', id: refreshToken })
      .first('grant_id');
    const live: { id: string }[] = await passbook
      .knex('oidc_models')
      .where({ kind: 'RefreshToken', grant_id: grant?.grant_id })
      .whereNull('consumed_at')
      .select('id');
    expect(live).toEqual([{ id: winner?.value.refresh_token }]);
    const accessTokens: { count: string }[] = await passbook
      .knex('oidc_models')
      .where({ kind: 'AccessToken', grant_id: grant?.grant_id })
      .count();
    expect(accessTokens).toEqual([{ count: '2' }]);
  });
});

describe('F22: a refresh token belongs to its client', () => {
  test("client 2 presenting client 1's refresh token gets invalid_grant, and client 1's token still works", async () => {
    const app1 = await registerTestApp(passbook, { name: 'First App' });
    const app2 = await registerTestApp(passbook, { name: 'Second App' });
    const { config: config1, tokens } = await completeFlow(passbook, app1, customer, OFFLINE);
    const config2 = await discoverAs(passbook, app2);
    const refreshToken = requireRefreshToken(tokens);

    const error = await oauthError(oidc.refreshTokenGrant(config2, refreshToken));
    expect(error.status).toBe(400);
    expect(error.error).toBe('invalid_grant');

    const refreshed = await oidc.refreshTokenGrant(config1, refreshToken);
    expect(refreshed.access_token).toBeTruthy();
    expect(refreshed.claims()?.aud).toBe(app1.client_id);
    expect(await userinfoStatus(config1, tokens.access_token)).toBe(200);
  });
});
