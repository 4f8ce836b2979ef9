import { verifyCredentials } from '../../src/accounts/accounts.ts';
import { findClientMetadata } from '../../src/clients/clients.ts';
import { DEMO_CLIENT_ID, DEMO_CUSTOMER, DEMO_REDIRECT_URI, seedDemo } from '../../src/seed/demo.ts';
import { startTestPassbook, type TestPassbook } from '../support/passbook.ts';

let passbook: TestPassbook;

beforeAll(async () => {
  passbook = await startTestPassbook();
});

afterAll(async () => {
  await passbook.close();
});

test('the demo seed creates a customer who can sign in and an app, once, showing its secret only then', async () => {
  const validate = (metadata: Parameters<typeof passbook.provider.Client.validate>[0]) =>
    passbook.provider.Client.validate(metadata);

  const first = await seedDemo(passbook.knex, validate);
  expect(first.customerCreated).toBe(true);
  expect(first.clientSecret).toMatch(/^[\w-]{43}$/);
  expect(
    await verifyCredentials(passbook.knex, DEMO_CUSTOMER.username, DEMO_CUSTOMER.password),
  ).toBeDefined();
  const metadata = await findClientMetadata(passbook.knex, DEMO_CLIENT_ID);
  expect(metadata?.redirect_uris).toEqual([DEMO_REDIRECT_URI]);
  expect(metadata?.client_secret).not.toBe(first.clientSecret);

  const second = await seedDemo(passbook.knex, validate);
  expect(second).toEqual({ customerCreated: false });
  const demoUsers = await passbook
    .knex('users')
    .where({ username: DEMO_CUSTOMER.username })
    .count<{ count: string }[]>();
  expect(Number(demoUsers[0]?.count)).toBe(1);
});
