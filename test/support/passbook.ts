import { afterAll, beforeAll } from '@jest/globals';
import type { ClientMetadata } from 'oidc-provider';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import { startPassbook, type RunningPassbook } from '../../src/start.ts';
import { createCustomer } from '../../src/customers/customers.ts';
import { createClient, type NewClient, type RegisteredClient } from '../../src/clients/clients.ts';
import type { Knex } from '../../src/db/knex.ts';
import { RUN_DATA_ENCRYPTION_KEY } from './database.ts';
import { freePort } from '../../scripts/ports.ts';

/** A real Passbook on a free port, on this run's database. */
export interface TestPassbook extends RunningPassbook {
  issuer: string;
  knex: Knex;
  /** BANK_API_URL as this Passbook knows it: test/support/bank-api.ts starts the bank API there. */
  bankApiUrl: string;
}

export function testDatabaseUrl(): string {
  const url = process.env.PASSBOOK_TEST_DATABASE_URL;
  if (!url) throw new Error('PASSBOOK_TEST_DATABASE_URL is unset: run the tests with npm test');
  return url;
}

/** Shared by every test server of the run, so that a second instance can read the first one's cookies. */
export const TEST_COOKIE_KEYS = 'test-cookie-key-0123456789abcdef0123456789';

/** A DATA_ENCRYPTION_KEY for the tests that start in production: the one the others find stored. */
export const TEST_DATA_ENCRYPTION_KEY = RUN_DATA_ENCRYPTION_KEY;

/** @param log where the server logs; by default nowhere (LOG_LEVEL overrides, for debugging). */
export async function startTestPassbook(
  env: Record<string, string> = {},
  log: Logger = createLogger({ logLevel: process.env.LOG_LEVEL || 'silent' }),
): Promise<TestPassbook> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  // Reserved for this Passbook's bank API, which it must know before the API starts.
  const bankApiUrl = env.BANK_API_URL ?? `http://127.0.0.1:${await freePort()}`;
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: testDatabaseUrl(),
    PORT: String(port),
    ISSUER: issuer,
    COOKIE_KEYS: TEST_COOKIE_KEYS,
    PURGE_INTERVAL: '0',
    // Every test server signs in from 127.0.0.1 into one database: the per-address limit would
    // add up across test files. The throttling tests set it themselves.
    SIGN_IN_MAX_FAILURES_PER_ADDRESS: '100000',
    BANK_API_URL: bankApiUrl,
    ...env,
  });
  const passbook = await startPassbook(config, log);
  return { ...passbook, issuer, knex: passbook.database.knex, bankApiUrl };
}

/**
 * The Passbook a test file runs against: started before its first test, stopped after its last.
 * It is there only inside tests and hooks, so read it there, never at the top of the file.
 */
export function useTestPassbook(env: Record<string, string> = {}): TestPassbook {
  let running: TestPassbook | undefined;
  beforeAll(async () => {
    running = await startTestPassbook(env);
  });
  afterAll(async () => {
    await running?.close();
  });
  return new Proxy({} as TestPassbook, {
    get(_target, property) {
      if (!running) throw new Error('the test Passbook starts in beforeAll: use it inside a test or hook');
      const value: unknown = Reflect.get(running, property);
      return value;
    },
  });
}

/**
 * The Authorization header of client_secret_basic (RFC 6749 §2.3.1), for the raw requests that a
 * client library would not send the way a test needs them.
 */
export function basicAuthorization(client: {
  client_id: string;
  client_secret?: string | undefined;
}): string {
  const credentials = `${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret ?? '')}`;
  return `Basic ${Buffer.from(credentials).toString('base64')}`;
}

export interface TestCustomer {
  id: string;
  username: string;
  password: string;
  name: string;
  email: string;
  /** Set for a customer with two-step verification on (test/support/two-step.ts). */
  authenticatorSecret?: Buffer;
}

/** A customer with a unique username, so that test files never see each other's data. */
export async function createTestCustomer(knex: Knex, name = 'Test Customer'): Promise<TestCustomer> {
  const username = `customer-${randomBytes(6).toString('hex')}`;
  const password = `pw-${randomBytes(12).toString('base64url')}`;
  const email = `${username}@example.com`;
  const customer = await createCustomer(knex, { username, password, name, email });
  return { id: customer.id, username, password, name, email };
}

export const TEST_REDIRECT_URI = 'https://app.example/callback';

/** Registers an app exactly as the CLI does, validated by the running provider. */
export async function registerTestApp(
  passbook: TestPassbook,
  overrides: Partial<NewClient> = {},
): Promise<RegisteredClient & { metadata: ClientMetadata }> {
  return createClient(
    passbook.knex,
    {
      name: 'Budget Buddy',
      redirectUris: [TEST_REDIRECT_URI],
      isPublic: false,
      ...overrides,
    },
    (metadata) => passbook.provider.Client.validate(metadata),
  );
}
