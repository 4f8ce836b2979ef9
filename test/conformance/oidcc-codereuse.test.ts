import * as oidc from 'openid-client';
import { CustomerAgent } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import {
  authorizationRequest,
  customerAllows,
  discoverAs,
  exchangeCode,
} from '../support/third-party-app.ts';

const passbook = useTestPassbook();

async function newCustomerAndApp() {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  async function newCode(scope = 'openid profile') {
    const request = await authorizationRequest(config, scope);
    return { request, callbackUrl: await customerAllows(agent, request, customer) };
  }
  return { customer, config, newCode };
}

const REUSE_REFUSED = { status: 400, error: 'invalid_grant' };

/** What the token endpoint answered: 200, or the status and error of its error response. */
async function redemption(grant: Promise<unknown>): Promise<{ status: number; error?: string }> {
  try {
    await grant;
    return { status: 200 };
  } catch (error) {
    if (error instanceof oidc.ResponseBodyError) return { status: error.status, error: error.error };
    throw error;
  }
}

async function userinfoError(config: oidc.Configuration, accessToken: string, sub: string) {
  try {
    await oidc.fetchUserInfo(config, accessToken, sub);
  } catch (error) {
    if (error instanceof oidc.WWWAuthenticateChallengeError) {
      return { status: error.status, error: error.cause[0]?.parameters.error };
    }
    throw error;
  }
  throw new Error('userinfo accepted the access token');
}

describe('oidcc-codereuse', () => {
  test('a code redeemed a second time gets 400 invalid_grant', async () => {
    const { config, newCode } = await newCustomerAndApp();
    const { request, callbackUrl } = await newCode();
    await exchangeCode(config, callbackUrl, request);
    expect(await redemption(exchangeCode(config, callbackUrl, request))).toEqual(REUSE_REFUSED);
  });
});

describe('oidcc-codereuse-30seconds', () => {
  test('after a code is reused, userinfo rejects the access token from its first redemption', async () => {
    const { customer, config, newCode } = await newCustomerAndApp();
    const { request, callbackUrl } = await newCode();
    const tokens = await exchangeCode(config, callbackUrl, request);
    await expect(oidc.fetchUserInfo(config, tokens.access_token, customer.id)).resolves.toMatchObject({
      sub: customer.id,
    });

    expect(await redemption(exchangeCode(config, callbackUrl, request))).toEqual(REUSE_REFUSED);
    expect(await userinfoError(config, tokens.access_token, customer.id)).toEqual({
      status: 401,
      error: 'invalid_token',
    });
  });

  test('after a code is reused, the refresh token from its first redemption is refused', async () => {
    const { config, newCode } = await newCustomerAndApp();
    const { request, callbackUrl } = await newCode('openid offline_access');
    const tokens = await exchangeCode(config, callbackUrl, request);
    expect(tokens.refresh_token).toBeTruthy();

    expect(await redemption(exchangeCode(config, callbackUrl, request))).toEqual(REUSE_REFUSED);
    expect(await redemption(oidc.refreshTokenGrant(config, tokens.refresh_token ?? ''))).toEqual({
      status: 400,
      error: 'invalid_grant',
    });
  });
});

describe('simultaneous redemptions of one code', () => {
  test('of two redemptions sent at the same instant, exactly one gets tokens and the other 400 invalid_grant (10 races)', async () => {
    const { config, newCode } = await newCustomerAndApp();
    for (let race = 0; race < 10; race += 1) {
      const { request, callbackUrl } = await newCode();
      const outcomes = await Promise.all([
        redemption(exchangeCode(config, callbackUrl, request)),
        redemption(exchangeCode(config, callbackUrl, request)),
      ]);
      outcomes.sort((a, b) => a.status - b.status);
      expect({ race, outcomes }).toEqual({ race, outcomes: [{ status: 200 }, REUSE_REFUSED] });
    }
  });
});
