import type { RegisteredClient } from '../../src/clients/clients.ts';
import { loadBankApiConfig } from '../../src/bank-api/config.ts';
import { createBankApiLogger, startBankApi, type RunningBankApi } from '../../src/bank-api/start.ts';
import { registerTestApp, type TestPassbook } from './passbook.ts';
import { freePort, isFree } from '../../scripts/ports.ts';

/**
 * The bank API as it runs for real: its own process-like instance on a free port, its own
 * database pool and role on this run's database (test/support/global-setup.ts provisions it), and
 * its own registration at Passbook as a resource server. Tests read its ledger through `knex`,
 * the bank API's own connection.
 */

export interface TestBankApi extends RunningBankApi {
  resourceServer: RegisteredClient;
}

/** The bank API's own role on this run's database: it can use the schema `bank` and nothing else. */
export function testBankApiDatabaseUrl(): string {
  const url = process.env.PASSBOOK_TEST_BANK_API_DATABASE_URL;
  if (!url) throw new Error('PASSBOOK_TEST_BANK_API_DATABASE_URL is unset: run the tests with npm test');
  return url;
}

export function registerBankApiClient(passbook: TestPassbook): Promise<RegisteredClient> {
  return registerTestApp(passbook, { name: 'Bank API', redirectUris: [], isResourceServer: true });
}

/** @param env overrides of the bank API's environment (ISSUER, INTROSPECTION_TIMEOUT_MS, …). */
export async function startTestBankApi(
  passbook: TestPassbook,
  env: Record<string, string> = {},
  resourceServer?: RegisteredClient,
  log = createBankApiLogger(process.env.LOG_LEVEL || 'silent'),
): Promise<TestBankApi> {
  const client = resourceServer ?? (await registerBankApiClient(passbook));
  // The first bank API of a Passbook listens where that Passbook expects it; any other beside it
  // (a test's second, differently configured one) takes a free port of its own.
  const reserved = Number(new URL(passbook.bankApiUrl).port);
  const port = (await isFree(reserved)) ? reserved : await freePort();
  const config = loadBankApiConfig({
    PORT: String(port),
    BANK_API_URL: `http://127.0.0.1:${port}`,
    ISSUER: passbook.issuer,
    CLIENT_ID: client.client_id,
    CLIENT_SECRET: client.client_secret,
    BANK_API_DATABASE_URL: testBankApiDatabaseUrl(),
    METRICS_PORT: '0',
    ...env,
  });
  const bankApi = await startBankApi(config, { log });
  return { ...bankApi, resourceServer: client };
}

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

/** A request to the bank API as an app makes it; `token` goes in the Authorization header. */
export async function callBankApi<T = Record<string, unknown>>(
  baseUrl: string,
  path: string,
  options: {
    token?: string;
    method?: string;
    json?: unknown;
    headers?: Record<string, string>;
    body?: string;
  } = {},
): Promise<ApiAnswer<T>> {
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body = options.body;
  if (options.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(options.json);
  }
  const response = await fetch(`${baseUrl}${path}`, { method: options.method ?? 'GET', headers, body });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : {}) as T };
}
