import { randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import { launchChromium, screenshot } from '../support/browser.ts';
import { dpopHandle, newDpopKey } from '../support/dpop.ts';
import { fapiConfiguration, pushedAuthorizationRequest, registerFapiApp } from '../support/fapi-app.ts';
import { TEST_REDIRECT_URI, startTestPassbook, type TestPassbook } from '../support/passbook.ts';
import { paymentBody, type PaymentDetail } from '../support/payment-tokens.ts';
import { startTestSettleUp, type TestSettleUp } from '../support/settle-up.ts';
import { createTwoStepCustomer, nextAuthenticatorCode, type TwoStepCustomer } from '../support/two-step.ts';

/**
 * The story's sixth step in a real browser: the customer pays a friend back from Settle Up, a
 * FAPI 2.0 app (PAR, private_key_jwt, DPoP, a payment_initiation detail). They sign in at the
 * bank, give the code from their authenticator app, choose the account on the bank's own
 * payment screen, and the bank API books exactly that payment, once. Then an app holding such a
 * token tries what a careless or malicious one would: another amount, the token a second time,
 * the bound token as Bearer; the bank API refuses each and books nothing more.
 */

let passbook: TestPassbook;
let bankApi: TestBankApi;
let settleUp: TestSettleUp;
let customer: TwoStepCustomer;
let browser: Browser;
let context: BrowserContext;

const JO = { name: 'Jo Bloggs', iban: 'NL91ABNA0417164300' };

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  settleUp = await startTestSettleUp(passbook, bankApi.url);
  customer = await createTwoStepCustomer(passbook, 'Dana Demo');
  await seedDemoAccounts(bankApi.knex, customer.id);
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
}, 60_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await settleUp?.close();
  await bankApi?.close();
  await passbook?.close();
});

interface BookedRow {
  id: string;
  amount_minor: string;
  payee_name: string;
  payee_iban: string;
  debtor_iban: string;
}

/** Every payment booked from this customer's accounts, as the ledger holds them. */
function bookedPayments(): Promise<BookedRow[]> {
  return bankApi
    .knex('bank.payments as p')
    .join('bank.accounts as a', 'a.id', 'p.account_id')
    .where('a.customer_id', customer.id)
    .select('p.id', 'p.amount_minor', 'p.payee_name', 'p.payee_iban', 'a.iban as debtor_iban');
}

/** Through the bank's sign-in, its step-up code and its payment screen; returns what the screen said. */
async function approveAtTheBank(page: Page, options: { screenshots?: boolean; pickAccount?: number } = {}) {
  await page.waitForURL(`${passbook.issuer}/interaction/**`);
  if (await page.getByLabel('Username').isVisible()) {
    await page.getByLabel('Username').fill(customer.username);
    await page.getByLabel('Password').fill(customer.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }
  const codeField = page.getByLabel('The 6-digit code from your authenticator app');
  await Promise.race([codeField.waitFor(), page.getByRole('button', { name: 'Approve payment' }).waitFor()]);
  if (await codeField.isVisible()) {
    await codeField.fill(await nextAuthenticatorCode(customer.authenticatorSecret));
    if (options.screenshots) await screenshot(page, '6-bank-step-up-code');
    await page.getByRole('button', { name: 'Continue' }).click();
  }
  await page.getByRole('button', { name: 'Approve payment' }).waitFor();
  const wording = (await page.locator('.payment .wording').textContent())?.trim();
  const accounts = page.getByRole('radio');
  const offered = await page.locator('label.account').allTextContents();
  const chosen = accounts.nth(options.pickAccount ?? 0);
  await chosen.check();
  const debtorIban = await chosen.getAttribute('value');
  if (options.screenshots) await screenshot(page, '7-bank-payment-consent');
  await page.getByRole('button', { name: 'Approve payment' }).click();
  return { wording, offered: offered.map((text) => text.replace(/\s+/g, ' ').trim()), debtorIban };
}

test('6. Pay a friend back: Settle Up pays Jo €25.00, approved at the bank, booked once', async () => {
  const page = await context.newPage();
  await page.goto(settleUp.url);
  await screenshot(page, '5-settle-up-owes');
  await page.getByRole('button', { name: 'Pay Jo back €25.00' }).click();

  const screen = await approveAtTheBank(page, { screenshots: true, pickAccount: 0 });
  expect(screen.wording).toBe("Pay €25.00 to Jo Bloggs (NL91 ABNA 0417 1643 00), reference 'Dinner'");
  // Every offered account shows its balance, and the one chosen is the customer's own.
  expect(screen.offered.length).toBeGreaterThan(0);
  for (const line of screen.offered) expect(line).toMatch(/balance €[\d,]+\.\d\d/);

  await page.waitForURL(`${settleUp.url}/**`);
  await page.getByRole('heading', { name: 'You and Jo are square' }).waitFor();
  await screenshot(page, '8-settle-up-square');
  const receipt = await page.locator('.receipt').textContent();
  expect(receipt).toContain('NL91 ABNA 0417 1643 00');

  const booked = await bookedPayments();
  expect(booked).toHaveLength(1);
  expect(booked[0]).toMatchObject({
    amount_minor: '2500',
    payee_name: JO.name,
    payee_iban: JO.iban,
    debtor_iban: screen.debtorIban,
  });
  expect(receipt).toContain(booked[0]?.id);
  await page.close();
});

test('a payment token pays exactly what was approved, once, and only with its DPoP key', async () => {
  // An app of the same profile, driven by the test through openid-client, in the same browser.
  const app = await registerFapiApp(passbook, 'ES256', 'Tamper Test');
  const config = await fapiConfiguration(passbook, app);
  const dpopKey = await newDpopKey();
  const request = await pushedAuthorizationRequest(config, dpopKey, {
    authorization_details: JSON.stringify([
      {
        type: 'payment_initiation',
        instructedAmount: { currency: 'EUR', amount: '12.34' },
        creditorName: JO.name,
        creditorAccount: { iban: JO.iban },
        remittanceInformationUnstructured: 'Taxi',
      },
    ]),
  });
  const page = await context.newPage();
  let callback: string | undefined;
  await page.route(`${TEST_REDIRECT_URI}**`, async (route) => {
    callback = route.request().url();
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the app' });
  });
  await page.goto(request.url.href);
  await approveAtTheBank(page);
  await page.waitForURL(`${TEST_REDIRECT_URI}**`);
  await page.close();
  if (!callback) throw new Error('the bank never sent the customer back to the app');

  const DPoP = dpopHandle(config, dpopKey);
  const tokens = await oidc.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce },
    undefined,
    { DPoP },
  );
  expect(tokens.token_type).toBe('dpop');
  expect(tokens.refresh_token).toBeUndefined();
  const [approved] = tokens.authorization_details as PaymentDetail[];
  if (!approved) throw new Error('the token response carries no approved payment');
  const before = (await bookedPayments()).length;

  // The library throws on an answer with a challenge; the app reads the answer either way.
  const pay = (body: unknown, idempotencyKey: string) =>
    oidc
      .fetchProtectedResource(
        config,
        tokens.access_token,
        new URL(`${bankApi.url}/payments`),
        'POST',
        JSON.stringify(body),
        new Headers({ 'content-type': 'application/json', 'idempotency-key': idempotencyKey }),
        { DPoP },
      )
      .catch((error: unknown) => {
        if (error instanceof oidc.WWWAuthenticateChallengeError) return error.response;
        throw error;
      });

  const tampered = await pay(
    { ...paymentBody(approved), instructedAmount: { currency: 'EUR', amount: '123.40' } },
    randomUUID(),
  );
  expect(tampered.status).toBe(403);

  const asBearer = await fetch(`${bankApi.url}/payments`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${tokens.access_token}`,
      'content-type': 'application/json',
      'idempotency-key': randomUUID(),
    },
    body: JSON.stringify(paymentBody(approved)),
  });
  expect(asBearer.status).toBe(401);
  expect(asBearer.headers.get('www-authenticate')).toMatch(/^DPoP /);
  expect((await bookedPayments()).length).toBe(before);

  const key = randomUUID();
  const paid = await pay(paymentBody(approved), key);
  expect(paid.status).toBe(201);
  const { payment } = (await paid.json()) as { payment: { id: string } };

  // The same request again (an answer lost on the way) is the same payment, booked once.
  const retried = await pay(paymentBody(approved), key);
  expect(retried.status).toBe(201);
  expect(((await retried.json()) as { payment: { id: string } }).payment.id).toBe(payment.id);
  // The token used again for a second payment is refused.
  const replayed = await pay(paymentBody(approved), randomUUID());
  expect(replayed.status).toBe(409);
  expect((await bookedPayments()).length).toBe(before + 1);
});
