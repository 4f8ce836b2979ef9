import { CustomerAgent } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import * as oidc from 'openid-client';
import { authorizationRequest, completeFlow, discoverAs, exchangeCode } from '../support/third-party-app.ts';
import type { Page } from '../support/customer-agent.ts';

const passbook = useTestPassbook();

/** The consent screen's list: each line's wording, with "(already allowed)" where the app could already. */
function permissionsOn(page: Page): string[] {
  return page.document.querySelectorAll('.permissions li').map((item) => {
    const wording = item.querySelector('.wording')?.text ?? '';
    return item.classList.contains('already') ? `${wording} (already allowed)` : wording;
  });
}

function isConsentScreen(page: Page): boolean {
  return page.document.querySelector('form[action$="/consent"] button[name="decision"]') !== null;
}

test('consent is remembered across sign-ins: the same app asking for the same scopes skips the screen', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  await completeFlow(passbook, app, customer, 'openid transactions:read');

  const newBrowser = new CustomerAgent([TEST_REDIRECT_URI]);
  const config = await discoverAs(passbook, app);
  const signIn = await newBrowser.open(
    (await authorizationRequest(config, 'openid transactions:read')).url.href,
  );
  const afterSignIn = await newBrowser.signIn(signIn, customer.username, customer.password);
  expect(afterSignIn.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
  expect(new URL(afterSignIn.url).searchParams.get('code')).toBeTruthy();
});

test('asking for a new scope shows the screen again: what is new, beside what the app could already do', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { agent, config } = await completeFlow(passbook, app, customer, 'openid transactions:read');

  const wider = await authorizationRequest(config, 'openid transactions:read accounts:read');
  const consent = await agent.open(wider.url.href);
  expect(permissionsOn(consent)).toEqual([
    'Confirm who you are (already allowed)',
    'See your account names and balances',
    'Read your transactions (already allowed)',
  ]);
  const callback = await agent.consent(consent, 'allow');
  expect(new URL(callback.url).searchParams.get('code')).toBeTruthy();
});

test('prompt=consent for what the app already holds still lists every permission, never an empty screen', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook, { name: 'Probe App' });
  const scope = 'openid offline_access transactions:read';
  const { agent, config } = await completeFlow(passbook, app, customer, scope);

  // authorizationRequest sends prompt=consent with offline_access, as OpenID Connect requires.
  const again = await agent.open((await authorizationRequest(config, scope)).url.href);
  expect(isConsentScreen(again)).toBe(true);
  expect(again.document.querySelector('h1')?.text).toBe('Allow Probe App to:');
  expect(permissionsOn(again)).toEqual([
    'Confirm who you are (already allowed)',
    "Stay connected when you're not using it (already allowed)",
    'Read your transactions (already allowed)',
  ]);
  expect(again.body).toContain('already has these permissions and asks you to confirm them');
});

test('payments:write is no scope any more: an app asking for it is shown, and granted, only the rest', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const request = await authorizationRequest(config, 'openid transactions:read payments:write');
  const signIn = await agent.open(request.url.href);
  const consent = await agent.signIn(signIn, customer.username, customer.password);
  expect(permissionsOn(consent)).toEqual(['Confirm who you are', 'Read your transactions']);
  expect(consent.document.querySelector('.warning')).toBeNull();
  const callback = await agent.consent(consent, 'allow');
  const tokens = await exchangeCode(config, callback.url, request);
  expect(tokens.scope?.split(' ').sort()).toEqual(['openid', 'transactions:read']);
});

// A payment is asked for as a payment_initiation authorization detail, which oidc-provider asks
// consent for on every request; test/interactions/payment-consent.test.ts shows it asked again
// each time and never granted by prompt=none.

test('a denied consent returns access_denied and is recorded in the customer’s activity', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook, { name: 'Nope Ltd' });
  const config = await discoverAs(passbook, app);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const signIn = await agent.open((await authorizationRequest(config, 'openid')).url.href);
  const consent = await agent.signIn(signIn, customer.username, customer.password);
  const denied = await agent.consent(consent, 'deny');
  expect(new URL(denied.url).searchParams.get('error')).toBe('access_denied');

  const account = await agent.open(`${passbook.issuer}/account`);
  expect(account.document.querySelectorAll('.activity strong').map((item) => item.text)).toContain(
    'Refused Nope Ltd access',
  );
});

describe('each device holds a grant of its own; the consent behind them is remembered once', () => {
  const scope = 'openid offline_access transactions:read';

  async function connectTwoDevices() {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const phone = await completeFlow(passbook, app, customer, scope);
    const laptop = await completeFlow(passbook, app, customer, scope);
    return { customer, app, phone, laptop };
  }

  async function grantsOf(customerId: string, clientId: string): Promise<string[]> {
    const rows: { id: string }[] = await passbook
      .knex('oidc_models')
      .where({ kind: 'Grant', customer_id: customerId, client_id: clientId })
      .select('id');
    return rows.map((row) => row.id);
  }

  test('two sign-ins of one app make two grants', async () => {
    const { customer, app } = await connectTwoDevices();
    expect(await grantsOf(customer.id, app.client_id)).toHaveLength(2);
  });

  test('the app disconnecting one device (RFC 7009) leaves the other connected', async () => {
    const { phone, laptop } = await connectTwoDevices();
    await oidc.tokenRevocation(phone.config, String(phone.tokens.refresh_token));

    await expect(oidc.refreshTokenGrant(phone.config, String(phone.tokens.refresh_token))).rejects.toThrow();
    const refreshed = await oidc.refreshTokenGrant(laptop.config, String(laptop.tokens.refresh_token));
    expect(refreshed.access_token).toBeTruthy();
  });

  test('a refresh token replayed on one device cuts off that device only', async () => {
    const { phone, laptop } = await connectTwoDevices();
    const rotated = await oidc.refreshTokenGrant(phone.config, String(phone.tokens.refresh_token));
    await expect(oidc.refreshTokenGrant(phone.config, String(phone.tokens.refresh_token))).rejects.toThrow();
    await expect(oidc.refreshTokenGrant(phone.config, String(rotated.refresh_token))).rejects.toThrow();

    const refreshed = await oidc.refreshTokenGrant(laptop.config, String(laptop.tokens.refresh_token));
    expect(refreshed.access_token).toBeTruthy();
  });

  test('the customer’s Revoke on the account pages ends every device’s access at once', async () => {
    const { customer, app, phone, laptop } = await connectTwoDevices();
    const account = await phone.agent.open(`${passbook.issuer}/account`);
    expect(
      account.document
        .querySelectorAll('section[aria-labelledby="apps-heading"] h3')
        .map((heading) => heading.text),
    ).toEqual(['Budget Buddy']);
    await phone.agent.submit(account, `/account/apps/${app.client_id}/revoke`);

    await expect(oidc.refreshTokenGrant(phone.config, String(phone.tokens.refresh_token))).rejects.toThrow();
    await expect(
      oidc.refreshTokenGrant(laptop.config, String(laptop.tokens.refresh_token)),
    ).rejects.toThrow();
    expect(await grantsOf(customer.id, app.client_id)).toEqual([]);
  });
});
