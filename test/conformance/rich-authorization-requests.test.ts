import { expect } from '@jest/globals';
import * as oidc from 'openid-client';
import { CustomerAgent } from '../support/customer-agent.ts';
import { TEST_REDIRECT_URI, registerTestApp, useTestPassbook } from '../support/passbook.ts';
import { discoverAs } from '../support/third-party-app.ts';
import { fapiConfiguration, registerFapiApp } from '../support/fapi-app.ts';

/**
 * RFC 9396 requests for a payment. Only an app of the FAPI 2.0 profile may ask for one, and it
 * pushes every request (RFC 9126): a detail the bank would not pay exactly as written is refused
 * there with `invalid_authorization_details` in JSON, before any customer sees it and without
 * anything stored. An ordinary app asking for a payment is refused on its redirect (RFC 6749
 * §4.1.2.1), whatever the payment says.
 */

const passbook = useTestPassbook({ PAYMENT_MAX_AMOUNT: '500.00' });

function payment(overrides: Record<string, unknown> = {}) {
  return {
    type: 'payment_initiation',
    instructedAmount: { currency: 'EUR', amount: '25.00' },
    creditorName: 'Jo Bloggs',
    creditorAccount: { iban: 'NL91ABNA0417164300' },
    remittanceInformationUnstructured: 'Dinner',
    ...overrides,
  };
}

/** An app of the FAPI 2.0 profile: the only kind that may ask for payments. */
async function appConfig() {
  return fapiConfiguration(passbook, await registerFapiApp(passbook));
}

async function requestParameters(details: unknown, extra: Record<string, string> = {}) {
  return {
    redirect_uri: TEST_REDIRECT_URI,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    state: oidc.randomState(),
    authorization_details: typeof details === 'string' ? details : JSON.stringify(details),
    ...extra,
  };
}

async function interactionsStored(): Promise<number> {
  const rows = await passbook
    .knex('oidc_models')
    .where({ kind: 'Interaction' })
    .count<{ count: string }[]>('*');
  return Number(rows[0]?.count ?? 0);
}

const REFUSED: [string, unknown, RegExp][] = [
  ['a dollar amount', [payment({ instructedAmount: { currency: 'USD', amount: '25.00' } })], /currency/],
  [
    'an amount above PAYMENT_MAX_AMOUNT',
    [payment({ instructedAmount: { currency: 'EUR', amount: '500.01' } })],
    /limit of 500\.00/,
  ],
  [
    'an IBAN with a wrong check digit',
    [payment({ creditorAccount: { iban: 'NL92ABNA0417164300' } })],
    /iban/,
  ],
  ['an unknown member', [payment({ debtorAccount: { iban: 'DE89370400440532013000' } })], /unknown member/],
  ['two payments', [payment(), payment()], /exactly one/],
  ['another type', [{ type: 'account_information' }], /unsupported authorization details type/],
  [
    'a location that is not the bank API',
    [payment({ locations: ['https://elsewhere.example'] })],
    /locations/,
  ],
  ['JSON that is not an array', JSON.stringify(payment()), /JSON array/],
];

describe('at the authorization endpoint, the app is told on its redirect', () => {
  test('an ordinary app asking for a payment is refused, and nothing is stored', async () => {
    const config = await discoverAs(passbook, await registerTestApp(passbook));
    const before = await interactionsStored();
    const url = oidc.buildAuthorizationUrl(config, await requestParameters([payment()]));
    const answer = await new CustomerAgent([TEST_REDIRECT_URI]).open(url.href);

    expect(answer.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
    const callback = new URL(answer.url).searchParams;
    expect(callback.get('error')).toBe('invalid_authorization_details');
    expect(callback.get('iss')).toBe(passbook.issuer);
    expect(callback.has('code')).toBe(false);
    expect(await interactionsStored()).toBe(before);
  });

  test('a FAPI 2.0 app sending its payment to the authorization endpoint, not pushed, is refused', async () => {
    const config = await appConfig();
    const url = oidc.buildAuthorizationUrl(config, await requestParameters([payment()]));
    const answer = await new CustomerAgent([TEST_REDIRECT_URI]).open(url.href);
    const callback = new URL(answer.url).searchParams;
    expect(callback.get('error')).toBe('invalid_request');
    expect(callback.get('error_description')).toBe('Pushed Authorization Request must be used');
  });

  test('a valid pushed payment goes on to the sign-in page', async () => {
    const config = await appConfig();
    const url = await oidc.buildAuthorizationUrlWithPAR(config, await requestParameters([payment()]));
    const page = await new CustomerAgent([TEST_REDIRECT_URI]).open(url.href);
    expect(page.status).toBe(200);
    expect(page.url).toContain('/interaction/');
    expect(page.body).toContain('name="password"');
  });
});

describe('at the pushed authorization request endpoint, the app gets RFC JSON', () => {
  test.each(REFUSED)('%s: 400 invalid_authorization_details', async (_name, details, description) => {
    const config = await appConfig();
    const pushed = oidc.buildAuthorizationUrlWithPAR(config, await requestParameters(details));
    await expect(pushed).rejects.toMatchObject({
      error: 'invalid_authorization_details',
      error_description: expect.stringMatching(description),
      status: 400,
    });
  });

  test('a payment naming another resource answers invalid_target', async () => {
    const config = await appConfig();
    const pushed = oidc.buildAuthorizationUrlWithPAR(
      config,
      await requestParameters([payment()], { resource: 'https://api.elsewhere.example' }),
    );
    await expect(pushed).rejects.toMatchObject({ error: 'invalid_target', status: 400 });
  });

  test('a valid payment is pushed and answered with a request_uri', async () => {
    const config = await appConfig();
    const url = await oidc.buildAuthorizationUrlWithPAR(config, await requestParameters([payment()]));
    expect(url.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
  });
});
