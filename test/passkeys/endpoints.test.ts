import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
  type TestCustomer,
} from '../support/passbook.ts';
import { authorizationRequest, discoverAs } from '../support/third-party-app.ts';
import { addPasskey } from '../../src/passkeys/passkeys.ts';

/**
 * The passkey endpoints as another site, or a script without the page's token, would call them:
 * refused, and nothing stored. The ceremonies themselves are tested in a real browser
 * (test/e2e/passkeys.test.ts).
 */

const passbook = useTestPassbook();
let customer: TestCustomer;

beforeAll(async () => {
  customer = await createTestCustomer(passbook.knex, 'Casey Csrf');
});

function pageCsrf(page: Page, selector: string): string {
  const token = page.document.querySelector(selector)?.getAttribute('data-csrf');
  if (!token) throw new Error(`no ${selector} on ${page.url}`);
  return token;
}

async function call(
  agent: CustomerAgent,
  path: string,
  options: { csrf?: string; type?: string; origin?: string; body?: unknown } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': options.type ?? 'application/json' };
  if (options.csrf) headers['x-csrf-token'] = options.csrf;
  if (options.origin) headers.origin = options.origin;
  const page = await agent.open(`${passbook.issuer}${path}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(options.body ?? {}),
  });
  return { status: page.status, body: JSON.parse(page.body) as Record<string, unknown> };
}

/** Challenges issued to this agent's account sign-in form (its nonce cookie). */
async function challengesOf(agent: CustomerAgent): Promise<number> {
  const cookies = await agent.jar.getCookies(`${passbook.issuer}/account/sign-in`);
  const nonce = cookies.find((cookie) => cookie.key === 'passbook_signin')?.value;
  const [row] = await passbook
    .knex('passkey_challenges')
    .where({ binding: `account-sign-in:${nonce}` })
    .count<{ n: string }[]>({ n: '*' });
  return Number(row?.n);
}

test("the account sign-in's passkey calls need the page's token, JSON and the bank's own origin", async () => {
  const agent = new CustomerAgent();
  const signInPage = await agent.open(`${passbook.issuer}/account/sign-in`);
  const csrf = pageCsrf(signInPage, '[data-passkey-sign-in]');

  expect(await call(agent, '/account/sign-in/passkey/options')).toMatchObject({
    status: 403,
    body: { error: 'csrf_failed' },
  });
  expect((await call(agent, '/account/sign-in/passkey/options', { csrf: 'forged' })).status).toBe(403);
  expect((await call(agent, '/account/sign-in/passkey/options', { csrf, type: 'text/plain' })).status).toBe(
    415,
  );
  expect(
    (await call(agent, '/account/sign-in/passkey/options', { csrf, origin: 'https://phish.example' })).status,
  ).toBe(403);
  // Another browser has its own sign-in nonce: this page's token is worth nothing there.
  await new CustomerAgent().open(`${passbook.issuer}/account/sign-in`);
  expect((await call(new CustomerAgent(), '/account/sign-in/passkey/options', { csrf })).status).toBe(403);
  expect(await challengesOf(agent)).toBe(0);

  const options = await call(agent, '/account/sign-in/passkey/options', { csrf });
  expect(options.status).toBe(200);
  expect(options.body).toMatchObject({ rpId: '127.0.0.1', userVerification: 'required' });
  // No list of credentials: the authenticator offers the passkeys it holds for the bank.
  expect(options.body.allowCredentials).toBeUndefined();
  expect(await challengesOf(agent)).toBe(1);

  const garbage = await call(agent, '/account/sign-in/passkey', { csrf, body: { credential: { id: 'x' } } });
  expect(garbage).toMatchObject({ status: 401, body: { error: 'passkey_refused' } });
});

test("an app's sign-in screen's passkey calls are bound to its interaction", async () => {
  const app = await registerTestApp(passbook);
  const request = await authorizationRequest(await discoverAs(passbook, app), 'openid');
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const page = await agent.open(request.url.href);
  const csrf = pageCsrf(page, '[data-passkey-sign-in]');
  const endpoint = page.document
    .querySelector('[data-passkey-sign-in]')
    ?.getAttribute('data-passkey-sign-in');
  const uid = new URL(page.url).pathname.split('/')[2];
  expect(endpoint).toBe(`/interaction/${uid}/passkey`);

  expect((await call(agent, `${endpoint}/options`)).status).toBe(403);
  expect((await call(agent, `${endpoint}/options`, { csrf, type: 'text/plain' })).status).toBe(415);
  // Without the interaction's cookie the interaction is not this browser's.
  expect((await call(new CustomerAgent(), `${endpoint}/options`, { csrf })).status).toBe(400);
  expect((await call(agent, `${endpoint}/options`, { csrf })).status).toBe(200);
});

test('managing passkeys needs the signed-in session and its token; removal is a CSRF-checked form', async () => {
  const outsider = new CustomerAgent();
  expect((await call(outsider, '/account/security/passkeys/options', { body: { name: 'x' } })).status).toBe(
    403,
  );

  const agent = new CustomerAgent();
  const signInPage = await agent.open(`${passbook.issuer}/account/sign-in`);
  await agent.submit(signInPage, '/account/sign-in', {
    username: customer.username,
    password: customer.password,
  });
  const csrf = pageCsrf(await agent.open(`${passbook.issuer}/account/security`), '[data-passkey-register]');
  expect((await call(agent, '/account/security/passkeys/options', { body: { name: 'x' } })).status).toBe(403);
  expect(
    (await call(agent, '/account/security/passkeys/options', { csrf, body: { name: '' } })).body,
  ).toMatchObject({ error: 'invalid_name' });
  const options = await call(agent, '/account/security/passkeys/options', { csrf, body: { name: 'Laptop' } });
  expect(options.status).toBe(200);
  expect(options.body).toMatchObject({
    rp: { id: '127.0.0.1', name: 'Passbook Bank' },
    user: { name: customer.username },
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
  });

  const passkey = await addPasskey(passbook.knex, {
    customerId: customer.id,
    credentialId: `test-${customer.id}`,
    publicKey: new Uint8Array([1, 2, 3]),
    counter: 0,
    transports: ['internal'],
    deviceType: 'multiDevice',
    backedUp: true,
    name: 'Phone',
  });
  const listed = await agent.open(`${passbook.issuer}/account/security`);
  expect(listed.body).toContain('Synced between your devices');
  const forged = await agent.open(`${passbook.issuer}/account/security/passkeys/${passkey?.id}/remove`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'csrf=forged',
  });
  expect(forged.status).toBe(403);
  expect(await passbook.knex('customer_passkeys').where({ id: passkey?.id }).first('id')).toBeDefined();

  const removed = await agent.submit(listed, `/account/security/passkeys/${passkey?.id}/remove`);
  expect(removed.url).toBe(`${passbook.issuer}/account/security`);
  expect(removed.body).toContain('You have no passkeys yet.');
  expect((await agent.open(`${passbook.issuer}/account`)).body).toContain('Passkey removed');
});
