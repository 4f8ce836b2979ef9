/**
 * @jest-environment ./test/support/node-fetch-environment.ts
 */
import { randomBytes } from 'node:crypto';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  TEST_REDIRECT_URI,
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  useTestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, completeFlow, discoverAs } from '../support/third-party-app.ts';
import { has, scrape, total, type Sample } from './exposition.ts';

/**
 * Passbook's metrics on their own listener (docs/metrics.md): after a real flow they show what
 * happened, by route name and outcome, and never a path, an id or a token.
 */

const passbook = useTestPassbook({ SIGN_IN_MAX_FAILURES: '2', CLIENT_AUTH_MAX_FAILURES: '2' });

const WRONG = 'not-the-password';

/** Everything a label must never carry, gathered while the flow runs. */
const secrets: string[] = [];
let samples: Sample[];
let text: string;

function form(values: Record<string, string>): URLSearchParams {
  return new URLSearchParams(values);
}

beforeAll(async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const flow = await completeFlow(passbook, app, customer);
  const code = new URL(flow.callbackUrl).searchParams.get('code') ?? '';
  secrets.push(customer.id, customer.username, app.client_id, code, flow.tokens.access_token);
  secrets.push(flow.tokens.refresh_token ?? '', flow.tokens.id_token ?? '');

  const introspect = (token: string) =>
    fetch(`${passbook.issuer}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(app),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: form({ token }),
    });
  expect((await introspect(flow.tokens.access_token)).status).toBe(200);
  expect((await introspect('no-such-token')).status).toBe(200);

  // An unknown username, paused after two wrong passwords, on an app's sign-in screen.
  const agent = new CustomerAgent([TEST_REDIRECT_URI]);
  const request = await authorizationRequest(await discoverAs(passbook, app), 'openid');
  let page: Page = await agent.open(request.url.href);
  secrets.push(new URL(page.url).pathname.split('/')[2] ?? '');
  const nobody = `nobody-${randomBytes(6).toString('hex')}`;
  for (const expected of [401, 401, 429]) {
    page = await agent.signIn(page, nobody, WRONG);
    expect(page.status).toBe(expected);
  }

  // An app's wrong secret, past its limit.
  const wrongSecret = { client_id: app.client_id, client_secret: 'wrong' };
  const statuses: number[] = [];
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const response = await fetch(`${passbook.issuer}/token`, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(wrongSecret),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: form({ grant_type: 'refresh_token', refresh_token: 'x' }),
    });
    statuses.push(response.status);
  }
  expect(statuses).toEqual([401, 401, 429]);

  const stray = randomBytes(9).toString('base64url');
  secrets.push(stray);
  expect((await fetch(`${passbook.issuer}/no/such/${stray}`)).status).toBe(404);

  // A statement that fails, to be timed as an error and never shown as SQL.
  await expect(passbook.knex.raw(`SELECT no_such_column_${stray.replace(/\W/g, '')}`)).rejects.toThrow();

  ({ text, samples } = await scrape(passbook.metricsUrl));
});

test('the listener is on loopback, on a port of its own', () => {
  const url = new URL(passbook.metricsUrl ?? '');
  expect(url.hostname).toBe('127.0.0.1');
  expect(url.port).not.toBe(new URL(passbook.issuer).port);
  expect(url.pathname).toBe('/metrics');
});

test('requests are counted by route name and status', () => {
  expect(total(samples, 'http_requests_total', { method: 'POST', route: 'token', status: '200' })).toBe(1);
  expect(total(samples, 'http_requests_total', { route: 'token', status: '401' })).toBe(2);
  expect(total(samples, 'http_requests_total', { route: 'token', status: '429' })).toBe(1);
  expect(total(samples, 'http_requests_total', { method: 'GET', route: 'authorization' })).toBe(2);
  expect(total(samples, 'http_requests_total', { route: 'resume' })).toBeGreaterThanOrEqual(1);
  expect(total(samples, 'http_requests_total', { route: 'introspection', status: '200' })).toBe(2);
  expect(
    total(samples, 'http_requests_total', {
      method: 'POST',
      route: '/interaction/:uid/login',
      status: '429',
    }),
  ).toBe(1);
  expect(total(samples, 'http_requests_total', { route: 'unmatched', status: '404' })).toBe(1);
  expect(
    has(samples, 'http_request_duration_seconds_bucket', { route: 'token', status: '200', le: '+Inf' }),
  ).toBe(true);
  expect(
    total(samples, 'http_request_duration_seconds_count', { route: 'discovery' }),
  ).toBeGreaterThanOrEqual(2);
});

test('no label carries a path with an id, a token or a customer', () => {
  const values = samples.flatMap((sample) => Object.values(sample.labels));
  for (const secret of secrets.filter((value) => value.length >= 8)) {
    expect(text).not.toContain(secret);
  }
  for (const route of samples.map((sample) => sample.labels.route).filter((route) => route !== undefined)) {
    // Engine route names, `unmatched`, or our patterns: literal lower-case segments and :params.
    expect(route).toMatch(/^(?:[a-z_.]+|\/|(?:\/(?:[a-z0-9.-]+|:[a-zA-Z]+))+)$/);
  }
  expect(values.length).toBeGreaterThan(0);
});

test('tokens issued, by kind', () => {
  for (const kind of ['authorization_code', 'access_token', 'refresh_token', 'id_token']) {
    expect(total(samples, 'passbook_tokens_issued_total', { kind })).toBe(1);
  }
});

test('sign-ins by outcome, and the throttle’s refusals', () => {
  expect(total(samples, 'passbook_sign_ins_total', { step: 'password', outcome: 'signed_in' })).toBe(1);
  expect(total(samples, 'passbook_sign_ins_total', { step: 'password', outcome: 'refused_wrong' })).toBe(2);
  expect(total(samples, 'passbook_sign_ins_total', { step: 'password', outcome: 'refused_throttled' })).toBe(
    1,
  );
  expect(total(samples, 'passbook_throttle_refusals_total', { limit: 'sign_in' })).toBe(1);
  expect(total(samples, 'passbook_throttle_refusals_total', { limit: 'client_secret' })).toBe(1);
});

test('introspections by result, and token errors by code', () => {
  expect(total(samples, 'passbook_introspections_total', { result: 'active' })).toBe(1);
  expect(total(samples, 'passbook_introspections_total', { result: 'inactive' })).toBe(1);
  expect(total(samples, 'passbook_token_errors_total', { error: 'invalid_client' })).toBe(3);
});

test('the database pool and query times, the event loop, back-channel logout failures', () => {
  expect(total(samples, 'db_pool_connections_max')).toBe(10);
  for (const name of ['db_pool_connections_used', 'db_pool_connections_free', 'db_pool_pending_acquires']) {
    expect(has(samples, name)).toBe(true);
  }
  expect(total(samples, 'db_query_duration_seconds_count', { outcome: 'ok' })).toBeGreaterThan(10);
  expect(total(samples, 'db_query_duration_seconds_count', { outcome: 'error' })).toBeGreaterThanOrEqual(1);
  expect(text).not.toMatch(/SELECT|no_such_column/i);
  expect(has(samples, 'nodejs_eventloop_lag_seconds')).toBe(true);
  expect(has(samples, 'nodejs_eventloop_lag_p99_seconds')).toBe(true);
  expect(total(samples, 'passbook_backchannel_logout_failures_total', { kind: 'unreachable' })).toBe(0);
  expect(samples.every((sample) => sample.labels.service === 'passbook')).toBe(true);
});

test('the main port does not serve /metrics', async () => {
  const response = await fetch(`${passbook.issuer}/metrics`);
  expect(response.status).toBe(404);
  expect(await response.text()).not.toContain('http_requests_total');
});

test('the metrics port serves GET /metrics and nothing else', async () => {
  const base = new URL(passbook.metricsUrl ?? '').origin;
  for (const path of [
    '/',
    '/healthz',
    '/metrics/',
    '/metrics/x',
    '/auth',
    '/.well-known/openid-configuration',
  ]) {
    expect([path, (await fetch(`${base}${path}`)).status]).toEqual([path, 404]);
  }
  const post = await fetch(`${base}/metrics`, { method: 'POST' });
  expect(post.status).toBe(405);
  expect(post.headers.get('allow')).toBe('GET');
});

test('METRICS_PORT=off serves no metrics at all', async () => {
  const quiet = await startTestPassbook({ METRICS_PORT: 'off' });
  try {
    expect(quiet.metricsUrl).toBeUndefined();
  } finally {
    await quiet.close();
  }
});

test('a logout token that cannot be delivered is counted by kind', async () => {
  // Loopback is allowed in tests, and nothing listens on the discard port.
  const app = await registerTestApp(passbook, {
    backchannelLogoutUri: 'http://127.0.0.1:9/backchannel-logout',
  });
  const customer = await createTestCustomer(passbook.knex);
  const { agent } = await completeFlow(passbook, app, customer, 'openid');
  await agent.submit(await agent.open(`${passbook.issuer}/account`), '/account/sign-out');
  const after = await scrape(passbook.metricsUrl);
  expect(total(after.samples, 'passbook_backchannel_logout_failures_total', { kind: 'unreachable' })).toBe(1);
  expect(total(after.samples, 'passbook_backchannel_logout_failures_total')).toBe(1);
});
