import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { verifyCredentials } from '../../src/customers/customers.ts';
import { findClientMetadata, secretDigest } from '../../src/clients/clients.ts';
import { DEMO_CLIENT_ID, DEMO_CUSTOMER, DEMO_REDIRECT_URI, seedDemo } from '../../src/seed/demo.ts';
import { startTestPassbook, type TestPassbook } from '../support/passbook.ts';

let passbook: TestPassbook;
let dataDir: string;

beforeAll(async () => {
  passbook = await startTestPassbook();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'passbook-seed-'));
});

afterAll(async () => {
  await passbook.close();
  await rm(dataDir, { recursive: true, force: true });
});

const validate = (metadata: Parameters<TestPassbook['provider']['Client']['validate']>[0]) =>
  passbook.provider.Client.validate(metadata);

type SavedCredentials = Record<string, { client_id: string; client_secret: string }>;

async function savedCredentials(): Promise<SavedCredentials> {
  const saved: unknown = JSON.parse(await readFile(path.join(dataDir, 'demo-clients.json'), 'utf8'));
  if (!isSavedCredentials(saved)) throw new Error('demo-clients.json is not a map of client credentials');
  return saved;
}

function isSavedCredentials(value: unknown): value is SavedCredentials {
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.values(value).every(
      (entry: unknown) =>
        typeof entry === 'object' &&
        entry !== null &&
        'client_id' in entry &&
        typeof entry.client_id === 'string' &&
        'client_secret' in entry &&
        typeof entry.client_secret === 'string',
    )
  );
}

test('the demo seed creates a customer who can sign in and an app, once, showing its secret only then', async () => {
  const first = await seedDemo(passbook.knex, validate, dataDir);
  expect(first.customerCreated).toBe(true);
  expect(first.clientSecret).toMatch(/^[\w-]{43}$/);
  expect(
    await verifyCredentials(passbook.knex, DEMO_CUSTOMER.username, DEMO_CUSTOMER.password),
  ).toMatchObject({ verified: true });
  const metadata = await findClientMetadata(passbook.knex, DEMO_CLIENT_ID);
  expect(metadata?.redirect_uris).toEqual([DEMO_REDIRECT_URI]);
  expect(metadata?.client_secret).not.toBe(first.clientSecret);

  const second = await seedDemo(passbook.knex, validate, dataDir);
  expect(second).toEqual({ customerCreated: false, credentialsFile: first.credentialsFile, app: first.app });
  expect(second).not.toHaveProperty('clientSecret');
  const demoUsers = await passbook
    .knex('customers')
    .where({ username: DEMO_CUSTOMER.username })
    .count<{ count: string }[]>();
  expect(Number(demoUsers[0]?.count)).toBe(1);
});

test('the app’s secret is kept, readable by its owner only, in the data folder’s demo-clients.json', async () => {
  const saved = (await savedCredentials())[DEMO_CLIENT_ID];
  expect(saved?.client_id).toBe(DEMO_CLIENT_ID);
  const metadata = await findClientMetadata(passbook.knex, DEMO_CLIENT_ID);
  expect(metadata?.client_secret).toBe(secretDigest(String(saved?.client_secret)));
  expect((await stat(path.join(dataDir, 'demo-clients.json'))).mode & 0o777).toBe(0o600);
});

test('when the credentials file is lost, the app is registered again with a new secret', async () => {
  const before = (await savedCredentials())[DEMO_CLIENT_ID];
  await rm(path.join(dataDir, 'demo-clients.json'));
  const again = await seedDemo(passbook.knex, validate, dataDir);
  expect(again.customerCreated).toBe(false);
  expect(again.clientSecret).toMatch(/^[\w-]{43}$/);
  expect(again.clientSecret).not.toBe(before?.client_secret);
  expect((await savedCredentials())[DEMO_CLIENT_ID]?.client_secret).toBe(again.clientSecret);
  const metadata = await findClientMetadata(passbook.knex, DEMO_CLIENT_ID);
  expect(metadata?.client_secret).toBe(secretDigest(String(again.clientSecret)));
});
