import type * as oidc from 'openid-client';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
  type TestCustomer,
} from '../support/passbook.ts';
import { authorizationRequest, discoverAs, type AuthorizationRequest } from '../support/third-party-app.ts';

/** The bank's own sign-in and consent screens: wording, refusals, CSRF, and the headers they carry. */

const passbook = useTestPassbook();

interface Started {
  customer: TestCustomer;
  clientId: string;
  config: oidc.Configuration;
  request: AuthorizationRequest;
  agent: CustomerAgent;
  signInPage: Page;
}

/** A new customer, a new app, and the sign-in page the app's authorization request leads to. */
async function startSignIn(scope = 'openid profile'): Promise<Started> {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const request = await authorizationRequest(config, scope);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const signInPage = await agent.open(request.url.href);
  expect(signInPage.status).toBe(200);
  expect(isSignInPage(signInPage)).toBe(true);
  return { customer, clientId: app.client_id, config, request, agent, signInPage };
}

function isSignInPage(page: Page): boolean {
  return (
    new URL(page.url).pathname.startsWith('/interaction/') &&
    page.document.querySelector('form[action$="/login"] input[name="password"]') !== null
  );
}

function isConsentPage(page: Page): boolean {
  return page.document.querySelector('form[action$="/consent"] button[name="decision"]') !== null;
}

async function sessionsOf(customer: TestCustomer): Promise<number> {
  const [row] = await passbook
    .knex('oidc_models')
    .where({ kind: 'Session', customer_id: customer.id })
    .count<{ count: string }[]>({ count: '*' });
  return Number(row?.count);
}

async function codesFor(clientId: string): Promise<number> {
  const [row] = await passbook
    .knex('oidc_models')
    .where({ kind: 'AuthorizationCode' })
    .whereRaw("payload->>'clientId' = ?", [clientId])
    .count<{ count: string }[]>({ count: '*' });
  return Number(row?.count);
}

/** Posts exactly these fields (no hidden ones added) to the form whose action contains `actionContains`. */
function postForm(agent: CustomerAgent, page: Page, actionContains: string, fields: Record<string, string>) {
  const form = page.document
    .querySelectorAll('form')
    .find((candidate) => (candidate.getAttribute('action') ?? '').includes(actionContains));
  if (!form) throw new Error(`no form with action containing "${actionContains}" on ${page.url}`);
  return agent.open(new URL(form.getAttribute('action') ?? '', page.url).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
}

function expectAccessDenied(page: Page, request: AuthorizationRequest): void {
  expect(page.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
  const callback = new URL(page.url).searchParams;
  expect(callback.get('error')).toBe('access_denied');
  expect(callback.get('state')).toBe(request.state);
  expect(callback.get('iss')).toBe(passbook.issuer);
  expect(callback.get('code')).toBeNull();
}

describe('wrong credentials', () => {
  test('a wrong password and an unknown username show the same message and stay on the sign-in page', async () => {
    const first = await startSignIn();
    const wrongPassword = await first.agent.signIn(
      first.signInPage,
      first.customer.username,
      'not-the-password-1',
    );
    const second = await startSignIn();
    const unknownUser = await second.agent.signIn(
      second.signInPage,
      'nobody-by-this-name',
      'not-the-password-1',
    );

    for (const page of [wrongPassword, unknownUser]) {
      expect(page.status).toBeGreaterThanOrEqual(400);
      expect(page.status).toBeLessThan(500);
      expect(isSignInPage(page)).toBe(true);
      expect(page.url.startsWith(TEST_REDIRECT_URI)).toBe(false);
    }
    expect(unknownUser.status).toBe(wrongPassword.status);
    const message = wrongPassword.document.querySelector('[role="alert"]')?.text.trim();
    expect(message).toBeTruthy();
    expect(unknownUser.document.querySelector('[role="alert"]')?.text.trim()).toBe(message);
    expect(await codesFor(first.clientId)).toBe(0);
    expect(await codesFor(second.clientId)).toBe(0);
    expect(await sessionsOf(first.customer)).toBe(0);
  });

  test('after a wrong password the right one on the same page signs in', async () => {
    const { agent, signInPage, customer } = await startSignIn();
    const retry = await agent.signIn(signInPage, customer.username, 'not-the-password-2');
    expect(isSignInPage(retry)).toBe(true);
    const next = await agent.signIn(retry, customer.username, customer.password);
    expect(isConsentPage(next)).toBe(true);
    expect(await sessionsOf(customer)).toBe(1);
  });
});

describe('refusing', () => {
  test('denying consent sends the app access_denied with state and iss', async () => {
    const { agent, signInPage, customer, request, clientId } = await startSignIn();
    const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
    expect(isConsentPage(consentPage)).toBe(true);
    const callback = await agent.consent(consentPage, 'deny');
    expectAccessDenied(callback, request);
    expect(await codesFor(clientId)).toBe(0);
  });

  test('the Cancel button on the sign-in page sends the app access_denied', async () => {
    const { agent, signInPage, request, clientId } = await startSignIn();
    const callback = await agent.submit(signInPage, '/abort');
    expectAccessDenied(callback, request);
    expect(await codesFor(clientId)).toBe(0);
  });
});

describe('CSRF on the sign-in form', () => {
  function expectCsrfRefusal(page: Page): void {
    expect(page.status).toBe(403);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(isSignInPage(page)).toBe(false);
    expect(page.document.querySelector('h1')?.text).toBeTruthy();
  }

  test('a forged token is refused with 403 and the customer is not signed in', async () => {
    const { agent, signInPage, customer } = await startSignIn();
    const refused = await agent.submit(signInPage, '/login', {
      username: customer.username,
      password: customer.password,
      csrf: 'forged-csrf-token-forged-csrf-token-0123456',
    });
    expectCsrfRefusal(refused);
    expect(await sessionsOf(customer)).toBe(0);

    // The genuine form still works, so the session count above could have seen a sign-in.
    const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
    expect(isConsentPage(consentPage)).toBe(true);
    expect(await sessionsOf(customer)).toBe(1);
  });

  test("another interaction's genuine token is refused", async () => {
    const { agent, signInPage, customer } = await startSignIn();
    const other = await startSignIn();
    const otherCsrf = other.signInPage.document.querySelector('input[name="csrf"]')?.getAttribute('value');
    expect(otherCsrf).toBeTruthy();
    const refused = await agent.submit(signInPage, '/login', {
      username: customer.username,
      password: customer.password,
      csrf: otherCsrf ?? '',
    });
    expectCsrfRefusal(refused);
    expect(await sessionsOf(customer)).toBe(0);
  });

  test('a missing token is refused with 403 and the customer is not signed in', async () => {
    const { agent, signInPage, customer } = await startSignIn();
    const refused = await postForm(agent, signInPage, '/login', {
      username: customer.username,
      password: customer.password,
    });
    expectCsrfRefusal(refused);
    expect(await sessionsOf(customer)).toBe(0);
  });

  test('the Cancel form needs the token too', async () => {
    const { agent, signInPage, request } = await startSignIn();
    const refused = await postForm(agent, signInPage, '/abort', {});
    expectCsrfRefusal(refused);
    expect(refused.url.startsWith(TEST_REDIRECT_URI)).toBe(false);
    // The interaction is untouched: the genuine Cancel still reaches the app.
    expectAccessDenied(await agent.submit(signInPage, '/abort'), request);
  });
});

describe('CSRF on the consent form', () => {
  test('a forged token is refused with 403 and the app gets no code', async () => {
    const { agent, signInPage, customer, clientId, request } = await startSignIn();
    const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
    expect(isConsentPage(consentPage)).toBe(true);
    const refused = await agent.submit(consentPage, '/consent', {
      decision: 'allow',
      csrf: 'forged-csrf-token-forged-csrf-token-0123456',
    });
    expect(refused.status).toBe(403);
    expect(refused.url.startsWith(TEST_REDIRECT_URI)).toBe(false);
    expect(await codesFor(clientId)).toBe(0);

    // The genuine form still works, so the code count above could have seen a code.
    const callback = await agent.consent(consentPage, 'allow');
    expect(new URL(callback.url).searchParams.get('state')).toBe(request.state);
    expect(await codesFor(clientId)).toBe(1);
  });

  test('a missing token is refused with 403 and the app gets no code', async () => {
    const { agent, signInPage, customer, clientId } = await startSignIn();
    const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
    const refused = await postForm(agent, consentPage, '/consent', { decision: 'allow' });
    expect(refused.status).toBe(403);
    expect(await codesFor(clientId)).toBe(0);
  });
});

describe('replay', () => {
  test('a sign-in form submitted again after it succeeded gets an error page, not a second sign-in', async () => {
    const { agent, signInPage, customer } = await startSignIn();
    const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
    expect(isConsentPage(consentPage)).toBe(true);
    const replay = await agent.signIn(signInPage, customer.username, customer.password);
    expect(replay.status).toBeGreaterThanOrEqual(400);
    expect(replay.status).toBeLessThan(500);
    expect(isSignInPage(replay)).toBe(false);
    expect(isConsentPage(replay)).toBe(false);
    expect(await sessionsOf(customer)).toBe(1);
  });
});

describe('page headers and markup', () => {
  function expectProtectiveHeaders(page: Page): void {
    expect(page.headers.get('cache-control')).toBe('no-store');
    const csp = page.headers.get('content-security-policy') ?? '';
    const directives = new Map(
      csp
        .split(';')
        .map((directive) => directive.trim().split(/\s+/))
        .filter((parts) => parts[0])
        .map(([name, ...values]) => [name?.toLowerCase(), values]),
    );
    expect(directives.get('frame-ancestors')).toEqual(["'none'"]);
    expect(csp).not.toContain("'unsafe-inline'");
    expect(csp).not.toContain("'unsafe-eval'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBeTruthy();
  }

  function expectNoInlineScript(page: Page): void {
    for (const script of page.document.querySelectorAll('script')) {
      expect(script.getAttribute('src')).toBeTruthy();
      expect(script.text.trim()).toBe('');
    }
    const handlers = page.document
      .querySelectorAll('*')
      .flatMap((element) => Object.keys(element.attributes).filter((name) => /^on/i.test(name)));
    expect(handlers).toEqual([]);
    expect(page.body).not.toMatch(/javascript:/i);
  }

  test('the sign-in page is not stored, not framed, and runs no inline script', async () => {
    const { signInPage } = await startSignIn();
    expectProtectiveHeaders(signInPage);
    expectNoInlineScript(signInPage);
  });

  test('the sign-in page with an error message carries the same protections', async () => {
    const { agent, signInPage, customer } = await startSignIn();
    const retry = await agent.signIn(signInPage, customer.username, 'not-the-password-3');
    expectProtectiveHeaders(retry);
    expectNoInlineScript(retry);
  });

  test('the consent page is not stored, not framed, and runs no inline script', async () => {
    const { agent, signInPage, customer } = await startSignIn();
    const consentPage = await agent.signIn(signInPage, customer.username, customer.password);
    expect(isConsentPage(consentPage)).toBe(true);
    expectProtectiveHeaders(consentPage);
    expectNoInlineScript(consentPage);
  });
});
