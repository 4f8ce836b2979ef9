import { expect } from '@jest/globals';
import { randomBytes, randomInt } from 'node:crypto';
import * as oidc from 'openid-client';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import { customerAllows, type AuthorizationRequest } from '../support/third-party-app.ts';
import { fapiConfiguration, pushedAuthorizationRequest, registerFapiApp } from '../support/fapi-app.ts';
import { dpopHandle, newDpopKey, type DpopKey } from '../support/dpop.ts';
import {
  codeAtStep,
  createTwoStepCustomer,
  nextAuthenticatorCode,
  type TwoStepCustomer,
} from '../support/two-step.ts';
import { atTime } from '../support/clock.ts';
import { openAccounts } from '../../src/bank-api/ledger.ts';
import { ibanFor } from '../../src/payments/iban.ts';
import { enrolAuthenticatorApp } from '../../src/customers/second-factors.ts';
import { recentEvents } from '../../src/audit/events.ts';
import { describeActivity } from '../../src/account-pages/present.ts';
import { eventually } from '../support/eventually.ts';

/**
 * A payment request (RFC 9396 payment_initiation) from the customer's side: two factors first, a
 * consent screen that says exactly what will be paid and offers the accounts that can pay it,
 * and a token that carries exactly that payment, for five minutes, for the bank API only.
 */

let passbook: TestPassbook;
let bankApi: TestBankApi;
let config: oidc.Configuration;

function newIban(): string {
  return ibanFor('NL', `PBPC${String(randomInt(10 ** 9)).padStart(10, '0')}`);
}

interface Accounts {
  everyday: string;
  savings: string;
}

/** A customer with an Everyday account holding €120.50 and a savings account holding €5.00. */
async function customerWithAccounts<T extends TestCustomer>(
  customer: T,
): Promise<T & { accounts: Accounts }> {
  const accounts = { everyday: newIban(), savings: newIban() };
  await openAccounts(bankApi.knex, customer.id, [
    {
      name: 'Everyday',
      kind: 'current',
      iban: accounts.everyday,
      currency: 'EUR',
      openingBalanceMinor: 12_050,
      transactions: [],
    },
    {
      name: 'Rainy day',
      kind: 'savings',
      iban: accounts.savings,
      currency: 'EUR',
      openingBalanceMinor: 500,
      transactions: [],
    },
  ]);
  return { ...customer, accounts };
}

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  // Payments are offered to apps of the FAPI 2.0 profile only: pushed requests, DPoP-bound tokens.
  config = await fapiConfiguration(passbook, await registerFapiApp(passbook, 'ES256', 'Split It'));
});

afterAll(async () => {
  await bankApi?.close();
  await passbook?.close();
});

function payment(amount = '25.00', creditorName = 'Jo Bloggs', reference = 'Dinner') {
  return {
    type: 'payment_initiation',
    instructedAmount: { currency: 'EUR', amount },
    creditorName,
    creditorAccount: { iban: 'NL91ABNA0417164300' },
    remittanceInformationUnstructured: reference,
  };
}

interface AppRequest extends AuthorizationRequest {
  dpopKey: DpopKey;
}

/** The app's pushed request, bound to a DPoP key of its own. */
async function appRequest(scope = 'openid', extra: Record<string, string> = {}): Promise<AppRequest> {
  const dpopKey = await newDpopKey();
  // OpenID Connect grants offline_access (a refresh token) only when consent is asked for.
  const consent: Record<string, string> = scope.split(' ').includes('offline_access')
    ? { prompt: 'consent' }
    : {};
  const request = await pushedAuthorizationRequest(config, dpopKey, { scope, ...consent, ...extra });
  return { ...request, dpopKey };
}

function paymentRequest(detail: object, scope = 'openid', extra: Record<string, string> = {}) {
  return appRequest(scope, { authorization_details: JSON.stringify([detail]), ...extra });
}

function exchange(callbackUrl: string, request: AppRequest) {
  return oidc.authorizationCodeGrant(
    config,
    new URL(callbackUrl),
    { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
    undefined,
    { DPoP: dpopHandle(config, request.dpopKey) },
  );
}

/** A whole ordinary sign-in with the app, in a browser of its own; returns that browser. */
async function signedInWith(customer: TestCustomer, scope: string): Promise<{ agent: CustomerAgent }> {
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const request = await appRequest(scope);
  await exchange(await customerAllows(agent, request, customer), request);
  return { agent };
}

/** Signs in with the password and the code, as a two-step customer does, up to the payment screen. */
async function toPaymentScreen(agent: CustomerAgent, url: URL, customer: TwoStepCustomer): Promise<Page> {
  const signIn = await agent.open(url.href);
  const codePage = await agent.signIn(signIn, customer.username, customer.password);
  return agent.submit(codePage, '/code', { code: await nextAuthenticatorCode(customer.authenticatorSecret) });
}

function offeredAccounts(page: Page) {
  return page.document.querySelectorAll('input[type="radio"][name="debtor"]').map((radio) => ({
    iban: radio.getAttribute('value'),
    text: (radio.parentNode?.text ?? '').replace(/\s+/g, ' ').trim(),
  }));
}

function buttons(page: Page): string[] {
  return page.document
    .querySelectorAll('button[name="decision"]')
    .map((button) => button.getAttribute('value') ?? '');
}

async function introspect(token: string) {
  return oidc.tokenIntrospection(config, token);
}

test('the screen says what will be paid, in the bank’s words, and offers only the accounts that can pay it', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook, 'Dana Payer'));
  const request = await paymentRequest(payment());
  const page = await toPaymentScreen(new CustomerAgent([TEST_REDIRECT_URI]), request.url, customer);

  expect(page.status).toBe(200);
  expect(page.document.querySelector('h1')?.text).toBe('Split It asks you to approve a payment');
  expect(page.document.querySelector('.payment .wording')?.text).toBe(
    "Pay €25.00 to Jo Bloggs (NL91 ABNA 0417 1643 00), reference 'Dinner'",
  );
  // Rainy day holds €5.00: it cannot pay €25.00 and is not offered.
  expect(offeredAccounts(page)).toEqual([
    {
      iban: customer.accounts.everyday,
      text: expect.stringMatching(/^Everyday NL\d\d PBPC \d{4} \d{4} \d\d · balance €120\.50$/),
    },
  ]);
  expect(
    page.document.querySelector('form[action$="/consent"] input[name="csrf"]')?.getAttribute('value'),
  ).toBeTruthy();
  expect(buttons(page)).toEqual(['allow', 'deny']);
});

test('Allow: the token carries exactly the approved payment, for the bank API, for five minutes, with no refresh token', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  // offline_access is asked for too: a payment never gets a refresh token anyway.
  const request = await paymentRequest(payment(), 'openid offline_access');
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toPaymentScreen(agent, request.url, customer);
  const callback = await agent.submit(page, '/consent', {
    decision: 'allow',
    debtor: customer.accounts.everyday,
  });
  const tokens = await exchange(callback.url, request);

  const approved = [{ ...payment(), debtorAccount: { iban: customer.accounts.everyday } }];
  expect(tokens.authorization_details).toEqual(approved);
  expect(tokens.expires_in).toBe(300);
  expect(tokens.refresh_token).toBeUndefined();
  expect(tokens.claims()?.amr).toContain('mfa');

  const introspection = await introspect(tokens.access_token);
  expect(introspection).toMatchObject({
    active: true,
    aud: passbook.bankApiUrl,
    sub: customer.id,
    authorization_details: approved,
  });
  expect(Number(introspection.exp) - Number(introspection.iat)).toBe(300);

  // Its grant ends when its token can no longer be issued or used, not a year later.
  const grant = await passbook
    .knex('oidc_models')
    .where({ kind: 'Grant', customer_id: customer.id })
    .first<{ expires_at: Date }>('expires_at');
  expect(grant?.expires_at.getTime()).toBeLessThanOrEqual(Date.now() + (60 + 300) * 1000);
  expect(grant?.expires_at.getTime()).toBeGreaterThanOrEqual(Number(introspection.exp) * 1000);
});

test('a payment changes nothing of what the customer is remembered to have allowed the app', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  await signedInWith(customer, 'openid accounts:read');
  const request = await paymentRequest(payment());
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toPaymentScreen(agent, request.url, customer);
  await exchange(
    (await agent.submit(page, '/consent', { decision: 'allow', debtor: customer.accounts.everyday })).url,
    request,
  );

  // A new device signs in: the remembered consent covers accounts:read, with no screen.
  const ordinary = await appRequest('openid accounts:read');
  const newDevice = new CustomerAgent([TEST_REDIRECT_URI]);
  const afterSignIn = await toPaymentScreen(newDevice, ordinary.url, customer);
  expect(afterSignIn.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
  const tokens = await exchange(afterSignIn.url, ordinary);
  expect(tokens.scope?.split(' ')).toContain('accounts:read');
  // Only the accounts the customer shared ride along, never the payment.
  expect(tokens.authorization_details?.map((detail) => detail.type)).toEqual(['account_information']);
});

test('every payment is its own consent: a second one is asked for again, and its token carries only itself', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const first = await paymentRequest(payment('25.00', 'Jo Bloggs', 'Dinner'));
  const firstPage = await toPaymentScreen(agent, first.url, customer);
  const firstTokens = await exchange(
    (await agent.submit(firstPage, '/consent', { decision: 'allow', debtor: customer.accounts.everyday }))
      .url,
    first,
  );

  // Same session, two factors still fresh: no sign-in, but the screen again, for the new payment.
  const second = await paymentRequest(payment('3.50', 'Corner Café', 'Coffee'));
  const secondPage = await agent.open(second.url.href);
  expect(secondPage.document.querySelector('.payment .wording')?.text).toBe(
    "Pay €3.50 to Corner Café (NL91 ABNA 0417 1643 00), reference 'Coffee'",
  );
  // €3.50 fits in the savings account too.
  expect(offeredAccounts(secondPage).map((account) => account.iban)).toEqual([
    customer.accounts.everyday,
    customer.accounts.savings,
  ]);
  const secondTokens = await exchange(
    (await agent.submit(secondPage, '/consent', { decision: 'allow', debtor: customer.accounts.savings }))
      .url,
    second,
  );

  const secondApproved = [
    { ...payment('3.50', 'Corner Café', 'Coffee'), debtorAccount: { iban: customer.accounts.savings } },
  ];
  expect(secondTokens.authorization_details).toEqual(secondApproved);
  expect((await introspect(secondTokens.access_token)).authorization_details).toEqual(secondApproved);
  // The first token still carries the first payment only.
  expect((await introspect(firstTokens.access_token)).authorization_details).toEqual([
    { ...payment('25.00', 'Jo Bloggs', 'Dinner'), debtorAccount: { iban: customer.accounts.everyday } },
  ]);

  // prompt=none never approves a payment, even right after one.
  const silent = await paymentRequest(payment('1.00'), 'openid', { prompt: 'none' });
  const answer = await agent.open(silent.url.href);
  expect(new URL(answer.url).searchParams.get('error')).toBe('consent_required');
});

test('an ordinary request after a payment gets a token without the payment', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const request = await paymentRequest(payment());
  const page = await toPaymentScreen(agent, request.url, customer);
  await exchange(
    (await agent.submit(page, '/consent', { decision: 'allow', debtor: customer.accounts.everyday })).url,
    request,
  );

  const ordinary = await appRequest('openid');
  let next = await agent.open(ordinary.url.href);
  if (next.document.querySelector('button[name="decision"]')) next = await agent.consent(next, 'allow');
  const tokens = await exchange(next.url, ordinary);
  expect(tokens.authorization_details).toBeUndefined();
  expect((await introspect(tokens.access_token)).authorization_details).toBeUndefined();
});

test('a debtor IBAN that was not offered is refused, and nothing is granted', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const someoneElse = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const request = await paymentRequest(payment());
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toPaymentScreen(agent, request.url, customer);

  for (const forged of [someoneElse.accounts.everyday, customer.accounts.savings, 'NL91ABNA0417164300', '']) {
    const refused = await agent.submit(page, '/consent', { decision: 'allow', debtor: forged });
    expect(refused.status).toBe(400);
    expect(refused.url).toContain('/interaction/');
    expect(refused.document.querySelector('[role="alert"]')?.text).toBe(
      'Choose one of the accounts shown to pay from.',
    );
  }
  const grants = await passbook
    .knex('oidc_models')
    .where({ kind: 'Grant', customer_id: customer.id })
    .count<{ count: string }[]>('*');
  expect(Number(grants[0]?.count)).toBe(0);

  // The customer can still choose an offered account.
  const callback = await agent.submit(page, '/consent', {
    decision: 'allow',
    debtor: customer.accounts.everyday,
  });
  expect(new URL(callback.url).searchParams.get('code')).toBeTruthy();
});

test('when no account can cover the payment the screen says so and offers only Deny, which answers access_denied', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const request = await paymentRequest(payment('500.00'));
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toPaymentScreen(agent, request.url, customer);

  expect(offeredAccounts(page)).toEqual([]);
  expect(page.body).toContain('None of your accounts has enough money for this payment');
  expect(buttons(page)).toEqual(['deny']);
  const forced = await agent.submit(page, '/consent', {
    decision: 'allow',
    debtor: customer.accounts.everyday,
  });
  expect(forced.status).toBe(400);

  const denied = await agent.submit(page, '/consent', { decision: 'deny' });
  expect(new URL(denied.url).searchParams.get('error')).toBe('access_denied');
});

test('a one-factor session is asked for the second factor before the payment screen', async () => {
  const customer = await customerWithAccounts(await createTestCustomer(passbook.knex));
  const signedIn = await signedInWith(customer, 'openid');
  const secret = randomBytes(20);
  await enrolAuthenticatorApp(passbook.knex, passbook.cipher, customer.id, secret);

  const request = await paymentRequest(payment());
  const stepUp = await signedIn.agent.open(request.url.href);
  expect(stepUp.document.querySelector('form[action$="/code"]')).not.toBeNull();
  expect(stepUp.document.querySelector('input[name="password"]')).toBeNull();

  const silent = await paymentRequest(payment(), 'openid', { prompt: 'none' });
  const answer = await signedIn.agent.open(silent.url.href);
  expect(new URL(answer.url).searchParams.get('error')).toBe('interaction_required');

  const screen = await signedIn.agent.submit(stepUp, '/code', { code: await nextAuthenticatorCode(secret) });
  expect(screen.document.querySelector('.payment .wording')).not.toBeNull();
});

test('two factors used more than 5 minutes ago are asked for again before a payment', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const first = await toPaymentScreen(agent, (await paymentRequest(payment())).url, customer);
  expect(first.document.querySelector('.payment .wording')).not.toBeNull();

  const later = Date.now() + 6 * 60 * 1000;
  const stepUp = await atTime(later, async () =>
    agent.open((await paymentRequest(payment('3.50'))).url.href),
  );
  expect(stepUp.document.querySelector('form[action$="/code"]')).not.toBeNull();
  expect(stepUp.document.querySelector('input[name="password"]')).toBeNull();
  const code = codeAtStep(customer.authenticatorSecret, Math.floor(later / 30_000));
  const screen = await atTime(later, () => agent.submit(stepUp, '/code', { code }));
  expect(screen.document.querySelector('.payment .wording')?.text).toContain('Pay €3.50');
});

test('a bank API that cannot be reached shows the error page (503), and nothing is granted', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const request = await paymentRequest(payment());
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const signIn = await agent.open(request.url.href);
  const codePage = await agent.signIn(signIn, customer.username, customer.password);
  await bankApi.close();
  try {
    const page = await agent.submit(codePage, '/code', {
      code: await nextAuthenticatorCode(customer.authenticatorSecret),
    });
    expect(page.status).toBe(503);
    expect(page.body).toContain('cannot show your accounts right now');
    expect(page.document.querySelector('button[name="decision"]')).toBeNull();
  } finally {
    bankApi = await startTestBankApi(passbook, {}, bankApi.resourceServer);
  }
  const grants = await passbook
    .knex('oidc_models')
    .where({ kind: 'Grant', customer_id: customer.id })
    .count<{ count: string }[]>('*');
  expect(Number(grants[0]?.count)).toBe(0);
});

test('the token endpoint refuses details restated by the app: the customer’s approval fixed them', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const request = await paymentRequest(payment());
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toPaymentScreen(agent, request.url, customer);
  const callback = await agent.submit(page, '/consent', {
    decision: 'allow',
    debtor: customer.accounts.everyday,
  });

  const restated = oidc.authorizationCodeGrant(
    config,
    new URL(callback.url),
    { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
    { authorization_details: JSON.stringify([payment('2500.00')]) },
    { DPoP: dpopHandle(config, request.dpopKey) },
  );
  await expect(restated).rejects.toMatchObject({ error: 'invalid_authorization_details', status: 400 });
});

test('Allow without the form’s CSRF token is refused (403), and nothing is granted', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const request = await paymentRequest(payment());
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await toPaymentScreen(agent, request.url, customer);

  const forged = await agent.submit(page, '/consent', {
    decision: 'allow',
    debtor: customer.accounts.everyday,
    csrf: 'forged',
  });
  expect(forged.status).toBe(403);
  const grants = await passbook
    .knex('oidc_models')
    .where({ kind: 'Grant', customer_id: customer.id })
    .count<{ count: string }[]>('*');
  expect(Number(grants[0]?.count)).toBe(0);
});

test('a payment leaves the app’s ordinary session-bound token in that browser alive', async () => {
  const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  // No offline_access: this token ends with the bank session's grant for the app.
  const ordinary = await appRequest('openid accounts:read');
  const first = await toPaymentScreen(agent, ordinary.url, customer);
  const callback = first.document.querySelector('button[name="decision"]')
    ? await agent.consent(first, 'allow')
    : first;
  const ordinaryTokens = await exchange(callback.url, ordinary);

  const request = await paymentRequest(payment());
  const page = await agent.open(request.url.href);
  const paymentTokens = await exchange(
    (await agent.submit(page, '/consent', { decision: 'allow', debtor: customer.accounts.everyday })).url,
    request,
  );

  expect((await introspect(ordinaryTokens.access_token)).active).toBe(true);
  expect((await introspect(paymentTokens.access_token)).active).toBe(true);

  // The next ordinary request in that browser goes on with the ordinary grant, without the payment.
  const again = await appRequest('openid accounts:read');
  const answer = await agent.open(again.url.href);
  expect(answer.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
  const tokens = await exchange(answer.url, again);
  expect(tokens.authorization_details?.map((detail) => detail.type)).toEqual(['account_information']);
  expect((await introspect(ordinaryTokens.access_token)).active).toBe(true);
});

describe('the activity names each approved payment and the second factor that approved it', () => {
  async function activityOf(customerId: string) {
    const events = await recentEvents(passbook.knex, customerId);
    return events.map((event) => ({ event, what: describeActivity(event, () => 'Split It') }));
  }

  test('with the authenticator app: amount, creditor and factor, and no plain consent', async () => {
    const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
    const request = await paymentRequest(payment());
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const page = await toPaymentScreen(agent, request.url, customer);
    await agent.submit(page, '/consent', { decision: 'allow', debtor: customer.accounts.everyday });

    // The sign-in lands off the request path; once it has, any consent_given would have too.
    const signedIn = async () =>
      (await activityOf(customer.id)).some(({ event }) => event.type === 'sign_in_succeeded');
    expect(await eventually(signedIn)).toBe(true);
    const activity = await activityOf(customer.id);
    const approved = activity.filter(({ event }) => event.type === 'payment_approved');
    expect(approved.map(({ what }) => what)).toEqual([
      'Split It: €25.00 to Jo Bloggs, approved with your authenticator app',
    ]);
    expect(approved[0]?.event.detail).toEqual({
      amount: '25.00',
      currency: 'EUR',
      creditor: 'Jo Bloggs',
      factor: 'authenticator_app',
    });
    expect(activity.some(({ event }) => event.type === 'consent_given')).toBe(false);
  });

  test('with a recovery code', async () => {
    const customer = await customerWithAccounts(await createTwoStepCustomer(passbook));
    const request = await paymentRequest(payment('7.50', 'Sam Lender'));
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const codePage = await agent.signIn(
      await agent.open(request.url.href),
      customer.username,
      customer.password,
    );
    const codesLeft = await agent.submit(codePage, '/code', { code: String(customer.recoveryCodes[0]) });
    const onward = codesLeft.document.querySelector('a.button')?.getAttribute('href') ?? '';
    const page = await agent.open(new URL(onward, codesLeft.url).href);
    await agent.submit(page, '/consent', { decision: 'allow', debtor: customer.accounts.everyday });

    const approved = (await activityOf(customer.id)).filter(({ event }) => event.type === 'payment_approved');
    expect(approved.map(({ what }) => what)).toEqual([
      'Split It: €7.50 to Sam Lender, approved with a recovery code',
    ]);
  });
});
