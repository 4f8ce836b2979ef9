import pg from 'pg';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  testDatabaseUrl,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, discoverAs } from '../support/third-party-app.ts';
import { eventually } from '../support/eventually.ts';

/**
 * A failed sign-in for a real customer's name must cost what one for an unknown name costs: the
 * only difference between them, the entry in the customer's activity, is written off the request
 * path. Proven without a stopwatch: while another connection holds the activity table locked, the
 * answer for a real name still comes at once, and the entry appears once the lock is gone.
 */

const passbook = useTestPassbook();

const LOCK_HELD_MS = 8_000;
/** Far below the lock: an answer that waited for the audit write would take the whole LOCK_HELD_MS. */
const ANSWER_WITHIN_MS = 4_000;

async function withActivityLocked<T>(work: () => Promise<T>): Promise<T> {
  const locker = new pg.Client({ connectionString: testDatabaseUrl() });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE');
    const release = setTimeout(() => void locker.query('ROLLBACK'), LOCK_HELD_MS);
    try {
      return await work();
    } finally {
      clearTimeout(release);
      await locker.query('ROLLBACK').catch(() => undefined);
    }
  } finally {
    await locker.end();
  }
}

async function timed(work: () => Promise<Page>): Promise<{ page: Page; ms: number }> {
  const started = performance.now();
  const page = await work();
  return { page, ms: performance.now() - started };
}

async function failedSignInsOf(customerId: string): Promise<number> {
  const [row] = await passbook
    .knex('audit_events')
    .where({ customer_id: customerId, type: 'sign_in_failed' })
    .count<{ count: string }[]>({ count: '*' });
  return Number(row?.count);
}

test('an app’s sign-in screen answers a wrong password for a real name without waiting for the activity log', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const request = await authorizationRequest(await discoverAs(passbook, app), 'openid');
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const signInPage = await agent.open(request.url.href);

  const { page, ms } = await withActivityLocked(() =>
    timed(() => agent.signIn(signInPage, customer.username, 'not-the-password')),
  );

  expect(page.status).toBe(401);
  expect(ms).toBeLessThan(ANSWER_WITHIN_MS);
  expect(await eventually(async () => (await failedSignInsOf(customer.id)) === 1)).toBe(true);
});

test('the account pages’ sign-in answers a wrong password for a real name without waiting for the activity log', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const agent = new CustomerAgent();
  const signInPage = await agent.open(`${passbook.issuer}/account/sign-in`);

  const { page, ms } = await withActivityLocked(() =>
    timed(() =>
      agent.submit(signInPage, '/account/sign-in', {
        username: customer.username,
        password: 'not-the-password',
      }),
    ),
  );

  expect(page.status).toBe(401);
  expect(ms).toBeLessThan(ANSWER_WITHIN_MS);
  expect(await eventually(async () => (await failedSignInsOf(customer.id)) === 1)).toBe(true);
});

test('a real name and an unknown one read exactly the same', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const agent = new CustomerAgent();
  const form = await agent.open(`${passbook.issuer}/account/sign-in`);
  const known = await agent.submit(form, '/account/sign-in', {
    username: customer.username,
    password: 'not-the-password',
  });
  const unknown = await agent.submit(form, '/account/sign-in', {
    username: 'nobody-by-this-name',
    password: 'not-the-password',
  });
  const message = (page: Page) => page.document.querySelector('[role="alert"], .error')?.text.trim();
  expect(known.status).toBe(unknown.status);
  expect(message(known)).toBeTruthy();
  expect(message(known)).toBe(message(unknown));
});
