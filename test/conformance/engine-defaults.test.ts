import { expect } from '@jest/globals';
import * as oidc from 'openid-client';
import { CustomerAgent } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, customerAllows, discoverAs } from '../support/third-party-app.ts';
import { fapiConfiguration, pushedAuthorizationRequest, registerFapiApp } from '../support/fapi-app.ts';

/**
 * oidc-provider 9 switches some features on by itself. Each is chosen on purpose, and each choice
 * is held to here: DPoP offered, the bank API the one `resource` (named by payments only), and what discovery does advertise
 * (form_post, pushed authorization requests) really working for an ordinary app.
 */

const passbook = useTestPassbook();

async function signedInApp() {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  return { customer, app, config };
}

test('DPoP (RFC 9449), on by default, is offered on purpose: a code exchange with a proof gets a DPoP token', async () => {
  const { customer, config } = await signedInApp();
  const request = await authorizationRequest(config, 'openid');
  const callback = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  const tokens = await oidc.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
    undefined,
    { DPoP: oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256')) },
  );
  // The rest of DPoP is in dpop.test.ts and fapi2-security-profile-final-dpop-negative-tests.test.ts.
  expect(tokens.token_type.toLowerCase()).toBe('dpop');
});

test('a resource (RFC 8707) other than the bank API answers invalid_target on the redirect', async () => {
  const { config } = await signedInApp();
  const request = await authorizationRequest(config, 'openid transactions:read', {
    resource: 'https://api.elsewhere.example/',
  });
  const answer = await new CustomerAgent([TEST_REDIRECT_URI]).open(request.url.href);
  expect(new URL(answer.url).searchParams.get('error')).toBe('invalid_target');
});

test('the bank API named as a resource without payment details answers invalid_target too', async () => {
  const { config } = await signedInApp();
  const request = await authorizationRequest(config, 'openid transactions:read', {
    resource: passbook.bankApiUrl,
  });
  const answer = await new CustomerAgent([TEST_REDIRECT_URI]).open(request.url.href);
  expect(new URL(answer.url).searchParams.get('error')).toBe('invalid_target');
});

test('the bank API named as a resource with payment details is accepted: the request goes on to sign-in', async () => {
  // Only an app of the FAPI 2.0 profile may ask for a payment, and it pushes its request.
  const config = await fapiConfiguration(passbook, await registerFapiApp(passbook));
  const request = await pushedAuthorizationRequest(config, undefined, {
    resource: passbook.bankApiUrl,
    authorization_details: JSON.stringify([
      {
        type: 'payment_initiation',
        instructedAmount: { currency: 'EUR', amount: '12.50' },
        creditorName: 'Jo Bloggs',
        creditorAccount: { iban: 'NL91ABNA0417164300' },
      },
    ]),
  });
  const page = await new CustomerAgent([TEST_REDIRECT_URI]).open(request.url.href);
  expect(page.url).toContain('/interaction/');
  expect(page.body).toContain('name="password"');
});

test('response_mode=form_post delivers the code in a self-submitting form the CSP allows', async () => {
  const { customer, config } = await signedInApp();
  const request = await authorizationRequest(config, 'openid', { response_mode: 'form_post' });
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const signIn = await agent.open(request.url.href);
  const consent = await agent.signIn(signIn, customer.username, customer.password);
  const page = await agent.consent(consent, 'allow');

  const form = page.document.querySelector('form');
  expect(form?.getAttribute('action')).toBe(TEST_REDIRECT_URI);
  const fields = new URLSearchParams();
  for (const input of form?.querySelectorAll('input') ?? []) {
    fields.set(input.getAttribute('name') ?? '', input.getAttribute('value') ?? '');
  }
  const csp = page.headers.get('content-security-policy') ?? '';
  expect(csp).toMatch(/script-src 'self' 'sha256-[\w+/=]+'/);

  const callback = new Request(TEST_REDIRECT_URI, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: fields.toString(),
  });
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: request.codeVerifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
  });
  expect(tokens.id_token).toBeTruthy();
});

test('an ordinary app may push its authorization request (RFC 9126) and complete the flow', async () => {
  const { customer, config } = await signedInApp();
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = await oidc.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: TEST_REDIRECT_URI,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
  });
  expect(url.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
  expect(url.searchParams.get('scope')).toBeNull();

  const callback = await customerAllows(
    new CustomerAgent([TEST_REDIRECT_URI]),
    { url, codeVerifier, state, nonce: '' },
    customer,
  );
  const tokens = await oidc.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
  });
  expect(tokens.access_token).toBeTruthy();
});
