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

describe('oidcc-server: the authorization-code flow end to end', () => {
  test('a customer signs in and consents; the app gets a code with state and iss, then tokens', async () => {
    const customer = await createTestCustomer(passbook.knex, 'Dana Ledger');
    const app = await registerTestApp(passbook);
    const config = await discoverAs(passbook, app);
    const request = await authorizationRequest(
      config,
      'openid profile email offline_access transactions:read',
    );
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);

    const signInPage = await agent.open(request.url.href);
    expect(signInPage.status).toBe(200);
    expect(signInPage.body).toContain('Budget Buddy');
    expect(signInPage.headers.get('cache-control')).toBe('no-store');

    const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
    expect(consentPage.status).toBe(200);
    const permissions = consentPage.document.querySelectorAll('.permissions li').map((item) => item.text);
    expect(permissions).toEqual([
      'Confirm who you are',
      'See your name',
      'See your email address',
      "Stay connected when you're not using it",
      'Read your transactions',
    ]);

    const callback = await agent.consent(consentPage, 'allow');
    const callbackUrl = new URL(callback.url);
    expect(callback.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
    expect(callbackUrl.searchParams.get('state')).toBe(request.state);
    expect(callbackUrl.searchParams.get('iss')).toBe(passbook.issuer);
    expect(callbackUrl.searchParams.get('code')?.length).toBeGreaterThanOrEqual(22);

    const tokens = await exchangeCode(config, callback.url, request);
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.expires_in).toBe(600);
    expect(tokens.refresh_token).toBeDefined();
    const claims = tokens.claims();
    expect(claims?.sub).toBe(customer.id);
    expect(claims?.iss).toBe(passbook.issuer);
    expect(claims?.nonce).toBe(request.nonce);
    // Policy: auth_time is always present, even when the app sent no max_age.
    expect(claims?.auth_time).toBeGreaterThan(0);

    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, customer.id);
    expect(userinfo).toMatchObject({ sub: customer.id, name: 'Dana Ledger', email: customer.email });
  });

  test('the second authorization of the same app skips the consent screen', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const config = await discoverAs(passbook, app);
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const scope = 'openid profile transactions:read';
    await customerAllows(agent, await authorizationRequest(config, scope), customer);

    const again = await authorizationRequest(config, scope);
    const page = await agent.open(again.url.href);
    expect(page.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
    expect(new URL(page.url).searchParams.get('code')).toBeTruthy();
  });
});
