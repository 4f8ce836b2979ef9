import { CustomerAgent } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, completeFlow, discoverAs } from '../support/third-party-app.ts';

const passbook = useTestPassbook();

function permissionsOn(page: { document: { querySelectorAll(selector: string): { text: string }[] } }) {
  return page.document.querySelectorAll('.permissions li').map((item) => item.text);
}

test('consent is remembered across sign-ins: the same app asking for the same scopes skips the screen', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  await completeFlow(passbook, app, customer, 'openid transactions:read');

  const newBrowser = new CustomerAgent([TEST_REDIRECT_URI]);
  const config = await discoverAs(passbook, app);
  const signIn = await newBrowser.open(
    (await authorizationRequest(config, 'openid transactions:read')).url.href,
  );
  const afterSignIn = await newBrowser.signIn(signIn, customer.username, customer.password);
  expect(afterSignIn.url.startsWith(TEST_REDIRECT_URI)).toBe(true);
  expect(new URL(afterSignIn.url).searchParams.get('code')).toBeTruthy();
});

test('asking for a new scope shows the screen again, for just what is new', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { agent, config } = await completeFlow(passbook, app, customer, 'openid transactions:read');

  const wider = await authorizationRequest(config, 'openid transactions:read accounts:read');
  const consent = await agent.open(wider.url.href);
  expect(permissionsOn(consent)).toEqual(['See your account names and balances']);
  const callback = await agent.consent(consent, 'allow');
  expect(new URL(callback.url).searchParams.get('code')).toBeTruthy();
});

test('payments:write is never granted without the screen: prompt=none answers consent_required', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { agent, config } = await completeFlow(passbook, app, customer, 'openid transactions:read');

  const silent = await authorizationRequest(config, 'openid transactions:read payments:write', {
    prompt: 'none',
  });
  const answer = new URL((await agent.open(silent.url.href)).url);
  expect(answer.searchParams.get('error')).toBe('consent_required');
  expect(answer.searchParams.get('code')).toBeNull();

  const asked = await agent.open((await authorizationRequest(config, 'openid payments:write')).url.href);
  expect(permissionsOn(asked)).toEqual(['Make payments from your accounts']);
  expect(asked.document.querySelector('.warning')?.text).toContain('make payments from your accounts');
});

test('a denied consent returns access_denied and is recorded in the customer’s activity', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook, { name: 'Nope Ltd' });
  const config = await discoverAs(passbook, app);
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const signIn = await agent.open((await authorizationRequest(config, 'openid')).url.href);
  const consent = await agent.signIn(signIn, customer.username, customer.password);
  const denied = await agent.consent(consent, 'deny');
  expect(new URL(denied.url).searchParams.get('error')).toBe('access_denied');

  const account = await agent.open(`${passbook.issuer}/account`);
  expect(account.document.querySelectorAll('.activity strong').map((item) => item.text)).toContain(
    'Refused Nope Ltd access',
  );
});
