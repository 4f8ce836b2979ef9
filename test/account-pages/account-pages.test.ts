import { registerBankApiClient } from '../support/bank-api.ts';
import * as oidc from 'openid-client';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  basicAuthorization,
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { eventually } from '../support/eventually.ts';
import { authorizationRequest, completeFlow, discoverAs } from '../support/third-party-app.ts';

let passbook: TestPassbook;
let bankApi: RegisteredClient;

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await registerBankApiClient(passbook);
});

afterAll(async () => {
  await passbook.close();
});

const OFFLINE = 'openid profile offline_access transactions:read';

function accountUrl(path = ''): string {
  return `${passbook.issuer}/account${path}`;
}

async function introspect(token: string): Promise<{ active: boolean }> {
  const response = await fetch(`${passbook.issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basicAuthorization(bankApi),
    },
    body: new URLSearchParams({ token }),
  });
  return (await response.json()) as { active: boolean };
}

async function userinfoStatus(accessToken: string): Promise<number> {
  const response = await fetch(`${passbook.issuer}/me`, {
    headers: { authorization: `Bearer ${accessToken}` },
  });
  return response.status;
}

async function refreshStatus(config: oidc.Configuration, refreshToken: string): Promise<string> {
  try {
    await oidc.refreshTokenGrant(config, refreshToken);
    return 'ok';
  } catch (error) {
    return (error as { error?: string }).error ?? String(error);
  }
}

/** Signs in on the bank's own sign-in page at /account/sign-in. */
async function signInToAccount(agent: CustomerAgent, customer: TestCustomer): Promise<Page> {
  const signIn = await agent.open(accountUrl());
  expect(signIn.url).toBe(accountUrl('/sign-in'));
  return agent.submit(signIn, '/account/sign-in', {
    username: customer.username,
    password: customer.password,
  });
}

async function sessionRows(customer: TestCustomer): Promise<number> {
  const rows = await passbook.knex('oidc_models').where({ kind: 'Session', customer_id: customer.id });
  return rows.length;
}

describe('signing in to the account pages', () => {
  test('without a session /account sends the browser to the bank sign-in page, which sets no-store', async () => {
    const page = await new CustomerAgent().open(accountUrl());
    expect(page.url).toBe(accountUrl('/sign-in'));
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.body).toContain('name="password"');
  });

  test('the right password opens the account pages; a wrong one does not, and both are in the activity', async () => {
    const customer = await createTestCustomer(passbook.knex, 'Amira Account');
    const agent = new CustomerAgent();
    const signIn = await agent.open(accountUrl());
    const refused = await agent.submit(signIn, '/account/sign-in', {
      username: customer.username,
      password: 'wrong',
    });
    expect(refused.status).toBe(401);
    expect(refused.body).toContain('The username or password is not right.');
    expect(await sessionRows(customer)).toBe(0);

    const account = await agent.submit(refused, '/account/sign-in', {
      username: customer.username,
      password: customer.password,
    });
    expect(account.url).toBe(accountUrl());
    expect(account.body).toContain('Signed in as Amira Account');
    const activity = account.document.querySelectorAll('.activity strong').map((item) => item.text);
    expect(activity.slice(0, 2)).toEqual(['Signed in', 'A sign-in failed: wrong password']);
  });

  test('a sign-in form posted without the form’s CSRF token is refused and signs nobody in', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = new CustomerAgent();
    const signIn = await agent.open(accountUrl());
    const forged = await agent.submit(signIn, '/account/sign-in', {
      username: customer.username,
      password: customer.password,
      csrf: 'forged',
    });
    expect(forged.status).toBe(403);
    expect(await sessionRows(customer)).toBe(0);
  });
});

describe('connected apps', () => {
  test('lists each app with its permissions in the catalogue’s words', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook, { name: 'Spendwise' });
    const { agent } = await completeFlow(passbook, app, customer, OFFLINE);
    const account = await agent.open(accountUrl());
    const row = account.document.querySelectorAll('.row').find((item) => item.text.includes('Spendwise'));
    expect(row).toBeDefined();
    expect(row?.querySelectorAll('.permissions li').map((item) => item.text)).toEqual([
      'Confirm who you are',
      'See your name',
      "Stay connected when you're not using it",
      'Read your transactions',
    ]);
    expect(row?.text).toMatch(/Connected \d{1,2} \w{3} \d{4}/);
    expect(row?.text).toMatch(/last active \d{1,2} \w{3} \d{4}/);
  });

  test('Revoke ends that app’s access and refresh tokens at once; another app keeps working', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const revoked = await registerTestApp(passbook, { name: 'Revoke Me' });
    const kept = await registerTestApp(passbook, { name: 'Keep Me' });
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const first = await completeFlow(passbook, revoked, customer, OFFLINE, agent);
    const second = await completeFlow(passbook, kept, customer, OFFLINE, agent);
    expect(await userinfoStatus(first.tokens.access_token)).toBe(200);

    const account = await agent.open(accountUrl());
    const after = await agent.submit(account, `/account/apps/${revoked.client_id}/revoke`);
    expect(after.url).toBe(accountUrl());
    const apps = after.document.querySelectorAll('#apps-heading + .rows h3').map((name) => name.text);
    expect(apps).toEqual(['Keep Me']);
    expect(after.document.querySelectorAll('.activity strong')[0]?.text).toBe('Disconnected Revoke Me');

    expect(await userinfoStatus(first.tokens.access_token)).toBe(401);
    expect(await introspect(first.tokens.access_token)).toEqual({ active: false });
    expect(await refreshStatus(first.config, first.tokens.refresh_token as string)).toBe('invalid_grant');

    expect(await userinfoStatus(second.tokens.access_token)).toBe(200);
    expect((await introspect(second.tokens.access_token)).active).toBe(true);
    expect(await refreshStatus(second.config, second.tokens.refresh_token as string)).toBe('ok');
  });

  test('a revoke posted without the CSRF token is refused and changes nothing', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const { agent, tokens } = await completeFlow(passbook, app, customer, OFFLINE);
    const response = await agent.open(accountUrl(`/apps/${app.client_id}/revoke`), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'csrf=',
    });
    expect(response.status).toBe(403);
    expect(await userinfoStatus(tokens.access_token)).toBe(200);
    expect((await agent.open(accountUrl())).body).toContain('Budget Buddy');
  });

  test('after a revoke the app must ask again, and the consent screen is shown', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const { agent } = await completeFlow(passbook, app, customer, 'openid transactions:read');
    await agent.submit(await agent.open(accountUrl()), `/account/apps/${app.client_id}/revoke`);
    const config = await discoverAs(passbook, app);
    const again = await agent.open((await authorizationRequest(config, 'openid transactions:read')).url.href);
    expect(again.body).toContain('name="decision"');
  });
});

describe('sessions', () => {
  test('another device’s session can be signed out from here; it then needs the password again', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const laptop = (await completeFlow(passbook, app, customer, 'openid')).agent;
    const phone = new CustomerAgent();
    const account = await signInToAccount(phone, customer);
    const sessions = account.document.querySelectorAll('#sessions-heading + .rows .row');
    expect(sessions).toHaveLength(2);
    expect(account.body).toContain('This device');
    for (const session of sessions) expect(session.text).toMatch(/Signed in .* from (::ffff:)?127\.0\.0\.1/);

    const other = account.document
      .querySelectorAll('form')
      .map((form) => form.getAttribute('action') ?? '')
      .find((action) => /^\/account\/sessions\/[^/]+\/sign-out$/.test(action));
    expect(other).toBeDefined();
    const after = await phone.submit(account, other as string);
    expect(after.document.querySelectorAll('#sessions-heading + .rows .row')).toHaveLength(1);
    expect(await sessionRows(customer)).toBe(1);

    const config = await discoverAs(passbook, app);
    const silent = await laptop.open(
      (await authorizationRequest(config, 'openid', { prompt: 'none' })).url.href,
    );
    expect(new URL(silent.url).searchParams.get('error')).toBe('login_required');
  });

  test('"Sign out everywhere else" ends every other session and keeps this one', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    await completeFlow(passbook, app, customer, 'openid');
    await completeFlow(passbook, app, customer, 'openid');
    const here = new CustomerAgent();
    const account = await signInToAccount(here, customer);
    expect(await sessionRows(customer)).toBe(3);
    const after = await here.submit(account, '/account/sessions/sign-out-others');
    expect(after.url).toBe(accountUrl());
    expect(await sessionRows(customer)).toBe(1);
  });

  test('Sign out deletes the session row and tells the browser to delete the cookie', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = new CustomerAgent();
    const account = await signInToAccount(agent, customer);
    expect(await sessionRows(customer)).toBe(1);

    const form = account.document.querySelector('form[action="/account/sign-out"]');
    const csrf = form?.querySelector('input[name="csrf"]')?.getAttribute('value') ?? '';
    const cookie = await agent.jar.getCookieString(accountUrl());
    const response = await fetch(accountUrl('/sign-out'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ csrf }),
      redirect: 'manual',
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('You are signed out');
    const cleared = response.headers.getSetCookie().find((line) => line.startsWith('passbook_session='));
    expect(cleared).toMatch(/expires=Thu, 01 Jan 1970/i);
    expect(await sessionRows(customer)).toBe(0);
  });
});

describe('activity', () => {
  test('consents, revocations and a reused refresh token show in the customer’s activity', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook, { name: 'Replay Co' });
    const { agent, config, tokens } = await completeFlow(passbook, app, customer, OFFLINE);
    const rotated = await oidc.refreshTokenGrant(config, tokens.refresh_token as string);
    expect(rotated.refresh_token).toBeDefined();
    expect(await refreshStatus(config, tokens.refresh_token as string)).toBe('invalid_grant');
    // The provider's events reach the activity off the request path: wait for the entry to land.
    await eventually(
      async () =>
        (await passbook
          .knex('audit_events')
          .where({ customer_id: customer.id, type: 'refresh_token_reuse_detected' })
          .first<{ id: string } | undefined>('id')) !== undefined,
    );

    const account = await agent.open(accountUrl());
    const activity = account.document.querySelectorAll('.activity strong').map((item) => item.text);
    expect(activity).toEqual(
      expect.arrayContaining([
        'Signed in',
        'Allowed Replay Co access',
        'Cut off Replay Co: an old token of it was used again',
      ]),
    );
    expect(account.document.querySelectorAll('#apps-heading + .rows h3')).toHaveLength(0);
  });

  test('signing out through an app (RP-initiated logout) shows as a sign-out', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook, { name: 'Logout Co' });
    const { agent, tokens } = await completeFlow(passbook, app, customer, 'openid');
    const confirm = await agent.open(
      `${passbook.issuer}/session/end?${new URLSearchParams({ id_token_hint: tokens.id_token as string }).toString()}`,
    );
    const done = await agent.submit(confirm, '/session/end/confirm', { logout: 'yes' });
    expect(done.body).toContain('You are signed out');
    expect(await sessionRows(customer)).toBe(0);

    const account = await signInToAccount(agent, customer);
    const activity = account.document.querySelectorAll('.activity strong').map((item) => item.text);
    expect(activity.slice(0, 2)).toEqual(['Signed in', 'Signed out']);
  });
});
