import { spawn } from 'node:child_process';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  testDatabaseUrl,
  useTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { PROJECT_ROOT } from '../support/project.ts';
import { authorizationRequest, discoverAs } from '../support/third-party-app.ts';
import { verifyCredentials } from '../../src/customers/customers.ts';
import { auditRecorder } from '../../src/audit/events.ts';
import { createLogger } from '../../src/log.ts';
import { loadConfig } from '../../src/config.ts';
import { lockSeconds, recordFailure, standing, usernameKey } from '../../src/sign-in/throttle.ts';
import { signInService } from '../../src/sign-in/sign-in.ts';

/**
 * Guessing is slowed down where every node sees it: failed sign-ins are counted in PostgreSQL per
 * username (known or not) and per address, a refused sign-in computes no hash and refuses the right
 * password too, and an app's secret has a limit of its own.
 */

const passbook = useTestPassbook({ SIGN_IN_MAX_FAILURES: '5' });

const WRONG = 'not-the-password';

async function accountSignIn(
  agent: CustomerAgent,
  issuer: string,
  username: string,
  password: string,
): Promise<Page> {
  const form = await agent.open(`${issuer}/account/sign-in`);
  return agent.submit(form, '/account/sign-in', { username, password });
}

function message(page: Page): string | undefined {
  return page.document.querySelector('[role="alert"]')?.text.trim();
}

async function failTimes(issuer: string, username: string, times: number): Promise<void> {
  const agent = new CustomerAgent();
  for (let attempt = 0; attempt < times; attempt += 1) {
    expect((await accountSignIn(agent, issuer, username, WRONG)).status).toBe(401);
  }
}

describe('per username', () => {
  test('after 5 failures the 6th attempt is refused with 429, even with the right password', async () => {
    const customer = await createTestCustomer(passbook.knex);
    await failTimes(passbook.issuer, customer.username, 5);

    const refused = await accountSignIn(
      new CustomerAgent(),
      passbook.issuer,
      customer.username,
      customer.password,
    );
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(message(refused)).toBe('Too many attempts. Try again in 1 minute.');
  });

  test('an unknown username is refused exactly as a real one', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const unknown = `nobody-${customer.username}`;
    await failTimes(passbook.issuer, customer.username, 5);
    await failTimes(passbook.issuer, unknown, 5);

    const real = await accountSignIn(new CustomerAgent(), passbook.issuer, customer.username, WRONG);
    const made = await accountSignIn(new CustomerAgent(), passbook.issuer, unknown, WRONG);
    expect([real.status, message(real)]).toEqual([made.status, message(made)]);
    expect(real.status).toBe(429);
    expect(
      Math.abs(Number(real.headers.get('retry-after')) - Number(made.headers.get('retry-after'))),
    ).toBeLessThanOrEqual(2);
  });

  test('an app’s sign-in screen is refused the same way', async () => {
    const customer = await createTestCustomer(passbook.knex);
    await failTimes(passbook.issuer, customer.username, 5);
    const app = await registerTestApp(passbook);
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const signIn = await agent.open(
      (await authorizationRequest(await discoverAs(passbook, app), 'openid')).url.href,
    );
    const refused = await agent.signIn(signIn, customer.username, customer.password);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    expect(message(refused)).toMatch(/^Too many attempts\. Try again in \d+ minutes?\.$/);
  });

  test('while refused, no password is checked at all', async () => {
    const customer = await createTestCustomer(passbook.knex);
    let checks = 0;
    const config = loadConfig({ NODE_ENV: 'test', DATABASE_URL: testDatabaseUrl() });
    const signIn = signInService({
      knex: passbook.knex,
      audit: auditRecorder(passbook.knex, createLogger({ logLevel: 'silent' })),
      throttle: config.throttle,
      secondFactors: {
        hasAuthenticatorApp: () => Promise.resolve(false),
        verifyCode: () => Promise.resolve({ ok: false }),
      },
      checkPassword: (...args) => {
        checks += 1;
        return verifyCredentials(...args);
      },
    });
    const origin = { ip: '203.0.113.7' };
    for (let attempt = 0; attempt < 5; attempt += 1) {
      await signIn.withPassword({ username: customer.username, password: WRONG, origin });
    }
    expect(checks).toBe(5);
    const refused = await signIn.withPassword({
      username: customer.username,
      password: customer.password,
      origin,
    });
    expect(refused.kind).toBe('refused');
    expect(checks).toBe(5);
  });

  test('a success resets the count', async () => {
    const customer = await createTestCustomer(passbook.knex);
    await failTimes(passbook.issuer, customer.username, 4);
    const agent = new CustomerAgent();
    expect(
      new URL((await accountSignIn(agent, passbook.issuer, customer.username, customer.password)).url)
        .pathname,
    ).toBe('/account');
    await failTimes(passbook.issuer, customer.username, 4);
    const again = await accountSignIn(
      new CustomerAgent(),
      passbook.issuer,
      customer.username,
      customer.password,
    );
    expect(new URL(again.url).pathname).toBe('/account');
  });

  test('the customer sees the pause in their activity', async () => {
    const customer = await createTestCustomer(passbook.knex);
    await failTimes(passbook.issuer, customer.username, 5);
    await passbook
      .knex('sign_in_throttle')
      .where({ key: usernameKey(customer.username) })
      .delete();
    const agent = new CustomerAgent();
    await accountSignIn(agent, passbook.issuer, customer.username, customer.password);
    const account = await agent.open(`${passbook.issuer}/account`);
    expect(account.document.querySelectorAll('.activity strong').map((item) => item.text)).toContain(
      'Sign-in paused after 5 failed attempts',
    );
  });
});

describe('the wait grows and is capped', () => {
  const rule = { maxFailures: 5, window: 900, lock: 60, maxLock: 900 };

  test('1 minute, then doubling, at most 15 minutes', () => {
    expect([0, 1, 2, 3, 4, 5, 10].map((previous) => lockSeconds(rule, previous))).toEqual([
      60, 120, 240, 480, 900, 900, 900,
    ]);
  });

  test('each lock in a row lasts twice as long, counted in the database', async () => {
    const key = usernameKey(`doubling-${Date.now()}`);
    let now = new Date();
    const lockAfterFive = async () => {
      let outcome;
      for (let attempt = 0; attempt < 5; attempt += 1)
        outcome = await recordFailure(passbook.knex, key, rule, now);
      return outcome?.locked?.seconds;
    };
    expect(await lockAfterFive()).toBe(60);
    expect((await standing(passbook.knex, [key], now)).refusal?.retryAfterSeconds).toBe(60);
    now = new Date(now.getTime() + 61_000);
    expect((await standing(passbook.knex, [key], now)).refusal).toBeUndefined();
    expect(await lockAfterFive()).toBe(120);
  });

  test('two failures counted at once are both counted, and only one locks', async () => {
    const key = usernameKey(`concurrent-${Date.now()}`);
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () => recordFailure(passbook.knex, key, rule)),
    );
    expect(outcomes.filter((outcome) => outcome.locked)).toHaveLength(2);
  });
});

describe('every node sees the same counts, and a restart forgets nothing', () => {
  let second: TestPassbook | undefined;
  afterAll(async () => {
    await second?.close();
  });

  test('failures on two processes add up, and the pause survives a restart', async () => {
    const customer: TestCustomer = await createTestCustomer(passbook.knex);
    second = await startTestPassbook({ SIGN_IN_MAX_FAILURES: '5' });
    await failTimes(passbook.issuer, customer.username, 3);
    await failTimes(second.issuer, customer.username, 2);
    expect(
      (await accountSignIn(new CustomerAgent(), passbook.issuer, customer.username, customer.password))
        .status,
    ).toBe(429);

    await second.close();
    second = await startTestPassbook({ SIGN_IN_MAX_FAILURES: '5' });
    expect(
      (await accountSignIn(new CustomerAgent(), second.issuer, customer.username, customer.password)).status,
    ).toBe(429);
  });
});

describe('per address', () => {
  let strict: TestPassbook | undefined;
  afterAll(async () => {
    await strict?.close();
  });

  test('one address failing with many usernames is refused for all of them', async () => {
    strict = await startTestPassbook({ SIGN_IN_MAX_FAILURES_PER_ADDRESS: '4', TRUST_PROXY: 'true' });
    const from = { 'x-forwarded-for': `198.51.100.${Math.floor(Math.random() * 250) + 1}` };
    // Every request carries the address, so that nothing is counted against 127.0.0.1, which
    // every test server shares.
    const attempt = async (username: string, password: string) => {
      const agent = new CustomerAgent();
      const form = await agent.open(`${strict?.issuer}/account/sign-in`, { headers: from });
      const csrf = form.document.querySelector('input[name="csrf"]')?.getAttribute('value') ?? '';
      return agent.open(`${strict?.issuer}/account/sign-in`, {
        method: 'POST',
        headers: { ...from, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf, username, password }).toString(),
      });
    };
    for (let index = 0; index < 4; index += 1)
      expect((await attempt(`someone-${index}-${Date.now()}`, WRONG)).status).toBe(401);
    const customer = await createTestCustomer(strict.knex);
    expect((await attempt(customer.username, customer.password)).status).toBe(429);
  });
});

describe('customers:unlock', () => {
  test('ends a pause at once', async () => {
    const customer = await createTestCustomer(passbook.knex);
    await failTimes(passbook.issuer, customer.username, 5);
    const child = spawn(
      process.execPath,
      ['src/cli/main.ts', 'customers:unlock', '--username', customer.username],
      {
        cwd: PROJECT_ROOT,
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: testDatabaseUrl(), LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ username: customer.username, unlocked: true });
    const page = await accountSignIn(
      new CustomerAgent(),
      passbook.issuer,
      customer.username,
      customer.password,
    );
    expect(new URL(page.url).pathname).toBe('/account');
  });
});

describe('an app’s client secret', () => {
  let strict: TestPassbook | undefined;
  afterAll(async () => {
    await strict?.close();
  });

  test('after the limit of wrong secrets, more are refused with 429 and Retry-After; the right one still works', async () => {
    strict = await startTestPassbook({ CLIENT_AUTH_MAX_FAILURES: '3' });
    const app = await registerTestApp(strict);
    const introspect = (secret: string) =>
      fetch(`${strict?.issuer}/token/introspection`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basicAuthorization({ client_id: app.client_id, client_secret: secret }),
        },
        body: 'token=whatever',
      });
    for (let attempt = 0; attempt < 3; attempt += 1) expect((await introspect('wrong')).status).toBe(401);
    const refused = await introspect('wrong');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({ error: 'invalid_client' });
    expect((await introspect(String(app.client_secret))).status).toBe(200);
  });
});
