import * as oidc from 'openid-client';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, completeFlow, discoverAs, exchangeCode } from '../support/third-party-app.ts';
import { createTwoStepCustomer, nextAuthenticatorCode } from '../support/two-step.ts';
import { enrolAuthenticatorApp } from '../../src/customers/second-factors.ts';
import { randomBytes } from 'node:crypto';

/**
 * Two-step verification at sign-in, at both doors, and the step-up when an app needs it: what the
 * customer is asked, what apps learn (amr, acr, introspection), and what is refused.
 */

const passbook = useTestPassbook();

const TWO_FACTORS = 'urn:passbook:acr:two-factors';
const PASSWORD = 'urn:passbook:acr:password';

function isCodePage(page: Page): boolean {
  return page.document.querySelector('form[action$="/code"] input[name="code"]') !== null;
}

function alert(page: Page): string | undefined {
  return page.document.querySelector('p[role="alert"]')?.text.trim();
}

async function appSignIn(scope = 'openid', extra: Record<string, string> = {}) {
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const request = await authorizationRequest(config, scope, extra);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  return { app, config, request, agent, page: await agent.open(request.url.href) };
}

describe('with two-step verification on, sign-in asks for a code after the password', () => {
  test('on an app’s sign-in screen: the code on its own page, then the app learns two factors', async () => {
    const customer = await createTwoStepCustomer(passbook);
    const { config, request, agent, page } = await appSignIn('openid', { acr_values: TWO_FACTORS });
    const codePage = await agent.signIn(page, customer.username, customer.password);
    expect(isCodePage(codePage)).toBe(true);
    expect(codePage.document.querySelector('input[name="password"]')).toBeNull();

    const consent = await agent.submit(codePage, '/code', {
      code: await nextAuthenticatorCode(customer.authenticatorSecret),
    });
    const callback = await agent.consent(consent, 'allow');
    const tokens = await exchangeCode(config, callback.url, request);
    expect(tokens.claims()).toMatchObject({ amr: ['pwd', 'otp', 'mfa'], acr: TWO_FACTORS });
  });

  test('a wrong code is refused on the same page, and a code already used is refused too', async () => {
    const customer = await createTwoStepCustomer(passbook);
    const { agent, page } = await appSignIn();
    const codePage = await agent.signIn(page, customer.username, customer.password);
    const wrong = await agent.submit(codePage, '/code', { code: '000000' });
    expect(wrong.status).toBe(401);
    expect(isCodePage(wrong)).toBe(true);
    expect(alert(wrong)).toMatch(/not right/);

    const code = await nextAuthenticatorCode(customer.authenticatorSecret);
    expect(new URL((await agent.submit(wrong, '/code', { code })).url).pathname).toMatch(/^\/interaction\//);

    const again = await appSignIn();
    const secondCodePage = await again.agent.signIn(again.page, customer.username, customer.password);
    const replayed = await again.agent.submit(secondCodePage, '/code', { code });
    expect(replayed.status).toBe(401);
  });

  test('on the account pages too; a pending sign-in cannot be forged or moved to another browser', async () => {
    const customer = await createTwoStepCustomer(passbook);
    const agent = new CustomerAgent();
    const form = await agent.open(`${passbook.issuer}/account/sign-in`);
    const codePage = await agent.submit(form, '/account/sign-in', {
      username: customer.username,
      password: customer.password,
    });
    expect(isCodePage(codePage)).toBe(true);

    const pending = codePage.document.querySelector('input[name="pending"]')?.getAttribute('value') ?? '';
    const forged = await agent.submit(codePage, '/account/sign-in/code', {
      // Another customer's id under this customer's signature.
      pending: pending.replace(
        /^[^.]+/,
        customer.id.replace(/.$/, (last) => (last === '0' ? '1' : '0')),
      ),
      code: await nextAuthenticatorCode(customer.authenticatorSecret),
    });
    expect(forged.status).toBe(400);
    const otherBrowser = new CustomerAgent();
    const otherForm = await otherBrowser.open(`${passbook.issuer}/account/sign-in`);
    const moved = await otherBrowser.submit(otherForm, '/account/sign-in', { username: 'x', password: 'y' });
    const stolen = await otherBrowser.open(`${passbook.issuer}/account/sign-in/code`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        csrf: moved.document.querySelector('input[name="csrf"]')?.getAttribute('value') ?? '',
        pending,
        code: '123456',
      }).toString(),
    });
    expect(stolen.status).toBe(400);

    const account = await agent.submit(codePage, '/account/sign-in/code', {
      code: await nextAuthenticatorCode(customer.authenticatorSecret),
    });
    expect(new URL(account.url).pathname).toBe('/account');
  });

  test('a recovery code works once, and the customer is told how many are left', async () => {
    const customer = await createTwoStepCustomer(passbook);
    const [recoveryCode] = customer.recoveryCodes;
    const signInWithRecovery = async () => {
      const agent = new CustomerAgent();
      const form = await agent.open(`${passbook.issuer}/account/sign-in`);
      const codePage = await agent.submit(form, '/account/sign-in', {
        username: customer.username,
        password: customer.password,
      });
      return {
        agent,
        page: await agent.submit(codePage, '/account/sign-in/code', { code: String(recoveryCode) }),
      };
    };
    const first = await signInWithRecovery();
    expect(first.page.body).toContain('You have 9 recovery codes left');
    const account = await first.agent.open(`${passbook.issuer}/account`);
    expect(account.document.querySelectorAll('.activity strong').map((item) => item.text)).toContain(
      'Recovery code used',
    );
    expect((await signInWithRecovery()).page.status).toBe(401);
  });

  test('wrong codes count against the same limit as wrong passwords', async () => {
    const customer = await createTwoStepCustomer(passbook);
    const { agent, page } = await appSignIn();
    let codePage = await agent.signIn(page, customer.username, customer.password);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      codePage = await agent.submit(codePage, '/code', { code: '000000' });
      expect(codePage.status).toBe(401);
    }
    const refused = await agent.submit(codePage, '/code', {
      code: await nextAuthenticatorCode(customer.authenticatorSecret),
    });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBeTruthy();
  });

  test('the right code resets the count, as the right password does without two-step', async () => {
    const customer = await createTwoStepCustomer(passbook);
    for (let round = 0; round < 2; round += 1) {
      const { agent, page } = await appSignIn();
      let codePage = await agent.signIn(page, customer.username, customer.password);
      for (let attempt = 0; attempt < 4; attempt += 1) {
        codePage = await agent.submit(codePage, '/code', { code: '000000' });
        expect(codePage.status).toBe(401);
      }
      const code = await nextAuthenticatorCode(customer.authenticatorSecret);
      const signedIn = await agent.submit(codePage, '/code', { code });
      expect(new URL(signedIn.url).pathname).toMatch(/^\/interaction\//);
    }
  });
});

describe('step-up: an app that needs two factors gets them from a one-factor session', () => {
  // Two factors as an essential acr claim; payments will need them as well, and freshly.
  const twoFactors = {
    claims: JSON.stringify({ id_token: { acr: { essential: true, values: [TWO_FACTORS] } } }),
  };

  async function oneFactorSessionWithAnAuthenticator() {
    const customer = await createTestCustomer(passbook.knex);
    const reading = await completeFlow(passbook, await registerTestApp(passbook), customer, 'openid');
    const secret = randomBytes(20);
    await enrolAuthenticatorApp(passbook.knex, passbook.cipher, customer.id, secret);
    return { ...reading, secret };
  }

  test('a one-factor session is asked for the code, not the password, and the app learns two factors', async () => {
    const { agent, config, secret } = await oneFactorSessionWithAnAuthenticator();
    const request = await authorizationRequest(config, 'openid', twoFactors);
    const stepUp = await agent.open(request.url.href);
    expect(isCodePage(stepUp)).toBe(true);
    expect(stepUp.document.querySelector('input[name="password"]')).toBeNull();
    expect(stepUp.document.querySelector('input[name="pending"]')).toBeNull();

    // The consent to openid is remembered: after the code the customer is back at the app.
    const callback = await agent.submit(stepUp, '/code', { code: await nextAuthenticatorCode(secret) });
    const tokens = await exchangeCode(config, callback.url, request);
    expect(tokens.claims()).toMatchObject({ amr: ['pwd', 'otp', 'mfa'], acr: TWO_FACTORS });
  });

  test('prompt=none from a one-factor session cannot step up: the app gets an error, no code', async () => {
    const { agent, config } = await oneFactorSessionWithAnAuthenticator();
    const request = await authorizationRequest(config, 'openid', { ...twoFactors, prompt: 'none' });
    const answer = new URL((await agent.open(request.url.href)).url);
    expect(answer.searchParams.get('code')).toBeNull();
    expect(answer.searchParams.get('error')).toMatch(/^(interaction|login)_required$/);
  });

  // A payment needs two factors used within the last 5 minutes: test/interactions/payment-consent.test.ts.

  test('a customer with no second factor is told how to set one up, and the app gets unmet_authentication_requirements', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const { agent, page } = await appSignIn('openid', twoFactors);
    const needed = await agent.signIn(page, customer.username, customer.password);
    expect(needed.document.querySelector('h1')?.text).toBe('Two-step verification needed');
    expect(needed.document.querySelector('a[href="/account/security"]')).not.toBeNull();
    const back = await agent.submit(needed, '/unmet');
    expect(new URL(back.url).searchParams.get('error')).toBe('unmet_authentication_requirements');
  });
});

describe('what apps ask for', () => {
  const essentialTwoFactors = JSON.stringify({
    id_token: { acr: { essential: true, values: [TWO_FACTORS] } },
  });

  test('discovery publishes the two levels', async () => {
    const metadata = (await (await fetch(`${passbook.issuer}/.well-known/openid-configuration`)).json()) as {
      acr_values_supported?: string[];
    };
    expect(metadata.acr_values_supported).toEqual([PASSWORD, TWO_FACTORS]);
  });

  test('an essential acr of two factors is honoured: the code is asked for, and the ID token says so', async () => {
    const customer = await createTwoStepCustomer(passbook);
    const { config, request, agent, page } = await appSignIn('openid', { claims: essentialTwoFactors });
    const codePage = await agent.signIn(page, customer.username, customer.password);
    const consent = await agent.submit(codePage, '/code', {
      code: await nextAuthenticatorCode(customer.authenticatorSecret),
    });
    const tokens = await exchangeCode(config, (await agent.consent(consent, 'allow')).url, request);
    expect(tokens.claims()?.acr).toBe(TWO_FACTORS);
  });

  test('an essential acr of two factors, for a customer with none, ends in unmet_authentication_requirements', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const { agent, page } = await appSignIn('openid', { claims: essentialTwoFactors });
    const needed = await agent.signIn(page, customer.username, customer.password);
    const back = await agent.submit(needed, '/unmet');
    expect(new URL(back.url).searchParams.get('error')).toBe('unmet_authentication_requirements');
  });

  test('acr_values is voluntary: a customer with one factor still signs in, and the ID token says password', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const { config, request, agent, page } = await appSignIn('openid', { acr_values: TWO_FACTORS });
    const consent = await agent.signIn(page, customer.username, customer.password);
    const tokens = await exchangeCode(config, (await agent.consent(consent, 'allow')).url, request);
    expect(tokens.claims()).toMatchObject({ acr: PASSWORD, amr: ['pwd'] });
  });

  test('introspection tells the bank API how the customer signed in', async () => {
    const customer = await createTwoStepCustomer(passbook);
    const app = await registerTestApp(passbook);
    const { tokens } = await completeFlow(passbook, app, customer, 'openid transactions:read');
    const answer = await fetch(`${passbook.issuer}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(app),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: tokens.access_token }).toString(),
    });
    expect(await answer.json()).toMatchObject({ active: true, amr: ['pwd', 'otp', 'mfa'], acr: TWO_FACTORS });
    expect(oidc).toBeDefined();
  });
});
