import { CustomerAgent, type Page } from './support/customer-agent.ts';
import {
  createTestCustomer,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from './support/passbook.ts';

/**
 * COOKIE_KEYS rotation (newest first), as docs/operations.md says to do it: add the new key at
 * the end and roll out, then move it to the front and roll out, then drop the old one after
 * SESSION_MAX_AGE. Cookies and the CSRF tokens of pages rendered before keep working throughout;
 * once the old key is dropped, what it alone signed no longer counts.
 */

const OLD = 'old-cookie-key-0123456789abcdef0123456789';
const NEW = 'new-cookie-key-0123456789abcdef0123456789';

const started: TestPassbook[] = [];
async function node(cookieKeys: string): Promise<TestPassbook> {
  const passbook = await startTestPassbook({ COOKIE_KEYS: cookieKeys });
  started.push(passbook);
  return passbook;
}

afterAll(async () => {
  await Promise.all(started.map((passbook) => passbook.close()));
});

async function signedInAt(passbook: TestPassbook, customer: TestCustomer): Promise<CustomerAgent> {
  const agent = new CustomerAgent();
  const form = await agent.open(`${passbook.issuer}/account/sign-in`);
  const account = await agent.submit(form, '/account/sign-in', {
    username: customer.username,
    password: customer.password,
  });
  expect(new URL(account.url).pathname).toBe('/account');
  return agent;
}

const isAccountPage = (page: Page) => new URL(page.url).pathname === '/account' && page.status === 200;

test('rotated in two steps, no node ever refuses a cookie another node signed', async () => {
  const original = await node(OLD);
  // Step 1: the new key is added at the end: every node can read it, none signs with it yet.
  const stepOne = await node(`${OLD},${NEW}`);
  // Step 2: the new key moves to the front: it signs, and the old one is still read.
  const stepTwo = await node(`${NEW},${OLD}`);
  const customer = await createTestCustomer(original.knex);
  const agent = await signedInAt(original, customer);

  // Cookies are not port-specific: one browser talks to every node, as behind a load balancer.
  expect(isAccountPage(await agent.open(`${stepOne.issuer}/account`))).toBe(true);
  const formFromStepOne = await agent.open(`${stepOne.issuer}/account`);
  // stepTwo signs the cookie's signature again with the new key...
  expect(isAccountPage(await agent.open(`${stepTwo.issuer}/account`))).toBe(true);
  // ...which stepOne reads, and a form stepOne rendered is accepted by stepTwo.
  expect(isAccountPage(await agent.open(`${stepOne.issuer}/account`))).toBe(true);

  const csrf = formFromStepOne.document
    .querySelector('form[action="/account/sign-out"] input[name="csrf"]')
    ?.getAttribute('value');
  const signedOut = await agent.open(`${stepTwo.issuer}/account/sign-out`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: csrf ?? '' }).toString(),
  });
  expect(signedOut.status).toBe(200);
  expect(signedOut.document.querySelector('h1')?.text).toMatch(/signed out/i);
});

test('once the previous key is dropped, a cookie only it signed no longer counts', async () => {
  const before = await node(OLD);
  const dropped = await node(NEW);
  const customer = await createTestCustomer(before.knex);
  const agent = await signedInAt(before, customer);
  const page = await agent.open(`${dropped.issuer}/account`);
  expect(new URL(page.url).pathname).toBe('/account/sign-in');
});
