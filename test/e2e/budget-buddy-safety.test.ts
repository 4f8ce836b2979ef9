import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import { startTestBudgetBuddy, type TestBudgetBuddy } from '../support/budget-buddy.ts';
import { CustomerAgent } from '../support/customer-agent.ts';
import {
  createTestCustomer,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';

/**
 * Budget Buddy is what developers copy, so it must get the dangerous parts right: CSRF on its
 * forms, state on its callback, its cookie's flags and its CSP. Played by a cookie-keeping agent.
 */

let passbook: TestPassbook;
let bankApi: TestBankApi;
let budgetBuddy: TestBudgetBuddy;
let customer: TestCustomer;

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  budgetBuddy = await startTestBudgetBuddy(passbook, bankApi.url);
  customer = await createTestCustomer(passbook.knex, 'Sam Saver');
  await seedDemoAccounts(bankApi.knex, customer.id);
});

afterAll(async () => {
  await budgetBuddy.close();
  await bankApi.close();
  await passbook.close();
});

function connected(): boolean {
  return budgetBuddy.sessions.list().some((session) => session.connection);
}

function csrfOf(page: {
  document: { querySelector(selector: string): { getAttribute(name: string): string | undefined } | null };
}) {
  return page.document.querySelector('input[name="csrf"]')?.getAttribute('value') ?? '';
}

test('its pages carry a strict CSP and its session cookie is HttpOnly, SameSite=Lax and host-only', async () => {
  const response = await fetch(budgetBuddy.url);
  expect(response.status).toBe(200);
  const csp = response.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain(`form-action 'self' ${passbook.issuer}`);
  expect(csp).not.toContain('unsafe-inline');
  expect(response.headers.get('cache-control')).toBe('no-store');
  const [cookie] = response.headers.getSetCookie();
  expect(cookie).toMatch(/^bb_session=[\w-]{43};/);
  expect(cookie?.toLowerCase()).toContain('httponly');
  expect(cookie?.toLowerCase()).toContain('samesite=lax');
  expect(cookie?.toLowerCase()).not.toContain('domain=');
});

test('"Connect your bank" without the session’s CSRF token is refused and goes nowhere', async () => {
  const agent = new CustomerAgent();
  const welcome = await agent.open(budgetBuddy.url);
  const stranger = await new CustomerAgent().open(budgetBuddy.url);
  for (const csrf of ['', 'forged', csrfOf(stranger)]) {
    const answer = await agent.open(`${budgetBuddy.url}/connect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf }).toString(),
    });
    expect(answer.status).toBe(403);
    expect(answer.url).toBe(`${budgetBuddy.url}/connect`);
  }
  expect(csrfOf(welcome)).not.toBe('');
});

test('a callback with a forged state connects nothing, and the real one is then spent', async () => {
  const agent = new CustomerAgent([`${budgetBuddy.url}/callback`]);
  const welcome = await agent.open(budgetBuddy.url);
  const signIn = await agent.submit(welcome, '/connect');
  const consent = await agent.signIn(signIn, customer.username, customer.password);
  const callback = new URL((await agent.consent(consent, 'allow')).url);
  expect(callback.searchParams.get('state')).toBeTruthy();

  const forged = new URL(callback);
  forged.searchParams.set('state', 'attacker-state');
  const refused = await agent.open(forged.href);
  expect(refused.status).toBe(400);
  expect(refused.body).toContain('Connecting to your bank failed');
  expect(connected()).toBe(false);

  // The pending request was used up by that attempt: the genuine callback cannot be replayed later.
  const late = await agent.open(callback.href);
  expect(late.status).toBe(400);
  expect(connected()).toBe(false);
});

test('a callback in a browser that never started a connection is refused', async () => {
  const answer = await new CustomerAgent().open(`${budgetBuddy.url}/callback?code=stolen&state=x`);
  expect(answer.status).toBe(400);
  expect(answer.body).toContain('This link has expired');
});

test('a customer who denies access lands back in the app, told nothing was connected', async () => {
  const agent = new CustomerAgent();
  const welcome = await agent.open(budgetBuddy.url);
  const signIn = await agent.submit(welcome, '/connect');
  const consent = await agent.signIn(signIn, customer.username, customer.password);
  const back = await agent.consent(consent, 'deny');
  expect(back.url).toBe(`${budgetBuddy.url}/`);
  expect(back.document.querySelector('.notice')?.text).toContain("You didn't allow Budget Buddy");
  expect(connected()).toBe(false);
});

test('"Disconnect" needs the CSRF token too', async () => {
  const agent = new CustomerAgent();
  const welcome = await agent.open(budgetBuddy.url);
  const signIn = await agent.submit(welcome, '/connect');
  const consent = await agent.signIn(signIn, customer.username, customer.password);
  const dashboard = await agent.consent(consent, 'allow');
  expect(dashboard.url).toBe(`${budgetBuddy.url}/`);
  expect(dashboard.body).toContain('Recent transactions');

  const forged = await agent.open(`${budgetBuddy.url}/disconnect`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'csrf=forged',
  });
  expect(forged.status).toBe(403);
  expect(connected()).toBe(true);

  const done = await agent.submit(dashboard, '/disconnect');
  expect(done.body).toContain('You disconnected your bank');
  expect(connected()).toBe(false);
});
