import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Secret, TOTP } from 'otpauth';
import { findCustomerByUsername, verifyCredentials } from '../../src/customers/customers.ts';
import { secondFactors } from '../../src/customers/second-factors.ts';
import { DEMO_TWO_STEP_CUSTOMER } from '../../src/seed/demo-two-step.ts';
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
  const first = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
  expect(first.customerCreated).toBe(true);
  expect(first.clientSecret).toMatch(/^[\w-]{43}$/);
  expect(
    await verifyCredentials(passbook.knex, DEMO_CUSTOMER.username, DEMO_CUSTOMER.password),
  ).toMatchObject({ verified: true });
  const metadata = await findClientMetadata(passbook.knex, DEMO_CLIENT_ID);
  expect(metadata?.redirect_uris).toEqual([DEMO_REDIRECT_URI]);
  expect(metadata?.client_secret).not.toBe(first.clientSecret);

  const second = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
  expect(second).toEqual({
    customerCreated: false,
    credentialsFile: first.credentialsFile,
    app: first.app,
    twoStep: { ...first.twoStep, recoveryCodes: undefined },
  });
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
  const again = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
  expect(again.customerCreated).toBe(false);
  expect(again.clientSecret).toMatch(/^[\w-]{43}$/);
  expect(again.clientSecret).not.toBe(before?.client_secret);
  expect((await savedCredentials())[DEMO_CLIENT_ID]?.client_secret).toBe(again.clientSecret);
  const metadata = await findClientMetadata(passbook.knex, DEMO_CLIENT_ID);
  expect(metadata?.client_secret).toBe(secretDigest(String(again.clientSecret)));
});

describe('the second demo customer', () => {
  async function customerId(): Promise<string> {
    const customer = await findCustomerByUsername(passbook.knex, DEMO_TWO_STEP_CUSTOMER.username);
    if (!customer) throw new Error('no second demo customer');
    return customer.id;
  }

  function codeFor(secret: string, steps = 0): string {
    return TOTP.generate({
      secret: Secret.fromBase32(secret.replace(/\s+/g, '')),
      timestamp: Date.now() + steps * 30_000,
    });
  }

  test('has two-step verification on, with the printed secret kept (0600) so that every start prints it again', async () => {
    const seed = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
    expect(seed.twoStep.username).toBe('demo-2fa');
    expect(seed.twoStep.secret).toMatch(/^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
    expect(seed.twoStep.otpauthUri).toMatch(
      /^otpauth:\/\/totp\/Passbook%20Bank:demo-2fa\?issuer=Passbook%20Bank&secret=[A-Z2-7]{32}&algorithm=SHA1&digits=6&period=30$/,
    );
    expect(
      await verifyCredentials(
        passbook.knex,
        DEMO_TWO_STEP_CUSTOMER.username,
        DEMO_TWO_STEP_CUSTOMER.password,
      ),
    ).toMatchObject({ verified: true });
    const id = await customerId();
    const factors = secondFactors(passbook.knex, passbook.cipher);
    expect(await factors.hasAuthenticatorApp(id)).toBe(true);
    expect(await factors.verifyCode(id, codeFor(seed.twoStep.secret))).toEqual({ ok: true, method: 'otp' });

    const file = path.join(dataDir, 'demo-two-step.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const again = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
    expect(again.twoStep.secret).toBe(seed.twoStep.secret);
    expect(again.twoStep.recoveryCodes).toBeUndefined();
    // Left as it was: the code just used is still used.
    expect(await factors.verifyCode(id, codeFor(seed.twoStep.secret))).toEqual({ ok: false });
  });

  test('a database that lost the enrolment gets it back with the same secret', async () => {
    const before = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
    await passbook
      .knex('authenticator_apps')
      .where({ customer_id: await customerId() })
      .del();
    const after = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
    expect(after.twoStep.secret).toBe(before.twoStep.secret);
    expect(after.twoStep.recoveryCodes).toHaveLength(10);
    expect(await secondFactors(passbook.knex, passbook.cipher).hasAuthenticatorApp(await customerId())).toBe(
      true,
    );
  });

  test('when the file is lost, a new secret is made, saved and enrolled', async () => {
    const before = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
    await rm(path.join(dataDir, 'demo-two-step.json'));
    const after = await seedDemo(passbook.knex, validate, passbook.cipher, dataDir);
    expect(after.twoStep.secret).not.toBe(before.twoStep.secret);
    const saved = JSON.parse(await readFile(path.join(dataDir, 'demo-two-step.json'), 'utf8')) as {
      secret: string;
    };
    expect(after.twoStep.secret.replace(/\s+/g, '')).toBe(saved.secret);
    const id = await customerId();
    expect(
      await secondFactors(passbook.knex, passbook.cipher).verifyCode(id, codeFor(after.twoStep.secret, 1)),
    ).toMatchObject({ ok: true });
  });
});
