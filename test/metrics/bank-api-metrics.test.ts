import { randomUUID } from 'node:crypto';
import { callBankApi, startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';
import { scrape, total } from './exposition.ts';

/** The bank API's metrics on their own listener: its routes by pattern, its introspections at Passbook. */

let passbook: TestPassbook;
let bankApi: TestBankApi;

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
});

afterAll(async () => {
  await bankApi.close();
  await passbook.close();
});

test('requests by route pattern and introspections by result, with no id or token in a label', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, customer, 'openid accounts:read transactions:read');
  const accountId = randomUUID();

  expect((await callBankApi(bankApi.url, '/accounts', { token: tokens.access_token })).status).toBe(200);
  const missing = await callBankApi(bankApi.url, `/accounts/${accountId}/transactions`, {
    token: tokens.access_token,
  });
  expect(missing.status).toBe(404);
  expect((await callBankApi(bankApi.url, '/accounts', { token: 'not-a-token' })).status).toBe(401);

  const { text, samples } = await scrape(bankApi.metricsUrl);
  expect(total(samples, 'http_requests_total', { method: 'GET', route: '/accounts', status: '200' })).toBe(1);
  expect(total(samples, 'http_requests_total', { route: '/accounts', status: '401' })).toBe(1);
  expect(total(samples, 'http_requests_total', { route: '/accounts/:id/transactions', status: '404' })).toBe(
    1,
  );
  expect(total(samples, 'bank_api_introspections_total', { result: 'active' })).toBe(2);
  expect(total(samples, 'bank_api_introspections_total', { result: 'inactive' })).toBe(1);
  expect(total(samples, 'db_query_duration_seconds_count', { outcome: 'ok' })).toBeGreaterThan(0);
  expect(total(samples, 'db_pool_connections_max')).toBe(10);
  expect(samples.some((sample) => sample.name === 'nodejs_eventloop_lag_seconds')).toBe(true);
  expect(samples.every((sample) => sample.labels.service === 'bank-api')).toBe(true);
  for (const secret of [accountId, customer.id, tokens.access_token, app.client_id]) {
    expect(text).not.toContain(secret);
  }
});

test('introspection that fails closed is counted as unavailable', async () => {
  const blind = await startTestBankApi(passbook, { INTROSPECTION_ENDPOINT: 'http://127.0.0.1:9/introspect' });
  try {
    expect((await callBankApi(blind.url, '/accounts', { token: 'any-token' })).status).toBe(503);
    const { samples } = await scrape(blind.metricsUrl);
    expect(total(samples, 'bank_api_introspections_total', { result: 'unavailable' })).toBe(1);
    expect(total(samples, 'http_requests_total', { route: '/accounts', status: '503' })).toBe(1);
  } finally {
    await blind.close();
  }
});

test('the bank API’s own port does not serve /metrics, and its metrics port serves nothing else', async () => {
  expect((await fetch(`${bankApi.url}/metrics`)).status).toBe(404);
  const base = new URL(bankApi.metricsUrl ?? '').origin;
  expect(new URL(base).hostname).toBe('127.0.0.1');
  for (const path of ['/', '/accounts', '/healthz']) {
    expect([path, (await fetch(`${base}${path}`)).status]).toEqual([path, 404]);
  }
});
