import { expect } from '@jest/globals';
import { loadConfig } from '../../src/config.ts';
import { sessionTtl } from '../../src/oidc/provider.ts';
import { atTime } from '../support/clock.ts';
import type { CustomerAgent } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, completeFlow, discoverAs } from '../support/third-party-app.ts';

const MINUTE = 60_000;
const lifetimes = loadConfig({}).lifetimes;

describe('sessionTtl', () => {
  const signedInAt = Date.UTC(2026, 10, 26, 9, 0, 0);
  const session = { loginTs: signedInAt / 1000 };

  test('a used session lives for the idle timeout from now', () => {
    expect(lifetimes.sessionIdleTimeout).toBe(900);
    expect(sessionTtl(lifetimes, session, signedInAt + 60 * MINUTE)).toBe(900);
  });

  test('but never past the absolute limit counted from sign-in', () => {
    const fiveMinutesBeforeLimit = signedInAt + lifetimes.sessionMaxAge * 1000 - 5 * MINUTE;
    expect(sessionTtl(lifetimes, session, fiveMinutesBeforeLimit)).toBe(300);
  });

  test('a session past its absolute limit ends at once', () => {
    expect(sessionTtl(lifetimes, session, signedInAt + lifetimes.sessionMaxAge * 1000 + MINUTE)).toBe(1);
  });
});

describe('inactivity ends the bank session', () => {
  let passbook: TestPassbook;

  beforeAll(async () => {
    passbook = await startTestPassbook();
  });

  afterAll(async () => {
    await passbook.close();
  });

  /** A prompt=none authorization through this browser: a code if the session lives, else the error. */
  async function silentAuthorization(agent: CustomerAgent, app: Awaited<ReturnType<typeof registerTestApp>>) {
    const config = await discoverAs(passbook, app);
    const request = await authorizationRequest(config, 'openid', { prompt: 'none' });
    const page = await agent.open(request.url.href);
    const callback = new URL(page.url);
    expect(page.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
    expect(callback.searchParams.get('state')).toBe(request.state);
    return { code: callback.searchParams.get('code'), error: callback.searchParams.get('error') };
  }

  test('prompt=none succeeds within the idle window, slides it on each use, and needs a password after it', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const start = Date.now();
    const agent = await atTime(
      start,
      async () => (await completeFlow(passbook, app, customer, 'openid')).agent,
    );

    const fourteenMinutesLater = await atTime(start + 14 * MINUTE, () => silentAuthorization(agent, app));
    expect(fourteenMinutesLater).toEqual({ code: expect.any(String), error: null });

    // Used at 14 minutes, so still alive at 28 (14 + 14), though 28 is past the first window.
    const twentyEight = await atTime(start + 28 * MINUTE, () => silentAuthorization(agent, app));
    expect(twentyEight).toEqual({ code: expect.any(String), error: null });

    const afterIdle = await atTime(start + 44 * MINUTE, () => silentAuthorization(agent, app));
    expect(afterIdle).toEqual({ code: null, error: 'login_required' });
  });

  test('an idle session also sends the account pages back to the sign-in page', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const start = Date.now();
    const agent = await atTime(
      start,
      async () => (await completeFlow(passbook, app, customer, 'openid')).agent,
    );

    const active = await atTime(start + 10 * MINUTE, () => agent.open(`${passbook.issuer}/account`));
    expect(active.url).toBe(`${passbook.issuer}/account`);
    const idle = await atTime(start + 26 * MINUTE, () => agent.open(`${passbook.issuer}/account`));
    expect(idle.url).toBe(`${passbook.issuer}/account/sign-in`);
  });
});

test('with SESSION_IDLE_TIMEOUT=2, a session left alone for three real seconds asks for the password again', async () => {
  const passbook = await startTestPassbook({ SESSION_IDLE_TIMEOUT: '2' });
  try {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const { agent } = await completeFlow(passbook, app, customer, 'openid');
    await new Promise((resolve) => setTimeout(resolve, 3000));

    const config = await discoverAs(passbook, app);
    const request = await authorizationRequest(config, 'openid', { prompt: 'none' });
    const page = await agent.open(request.url.href);
    expect(new URL(page.url).searchParams.get('error')).toBe('login_required');

    const interactive = await agent.open((await authorizationRequest(config, 'openid')).url.href);
    expect(interactive.body).toContain('name="password"');
  } finally {
    await passbook.close();
  }
});
