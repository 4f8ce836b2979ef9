import * as oidc from 'openid-client';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import { COMMIT_BY_SYNC, startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.ts';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  testDatabaseUrl,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import {
  authorizationRequest,
  customerAllows,
  discoverAs,
  exchangeCode,
  type AuthorizationRequest,
} from '../support/third-party-app.ts';
import { CustomerAgent } from '../support/customer-agent.ts';
import { eventually } from '../support/eventually.ts';
import { TEST_REDIRECT_URI } from '../support/passbook.ts';

/**
 * The connection to PostgreSQL cut just before each statement of a refresh and of a code
 * exchange in turn, by a proxy between Passbook and PostgreSQL. Every such request answers 503
 * temporarily_unavailable, and the app's plain retry of the same refresh token or code then
 * succeeds: nothing of the cut request was stored, so no refresh token is left consumed without
 * its successor, and no code without its tokens.
 */

let proxy: CuttingProxy;
let passbook: TestPassbook;
/** Straight to PostgreSQL, past the proxy: what is really stored. */
let direct: Knex;
let app: RegisteredClient;
let customer: TestCustomer;
let config: oidc.Configuration;

beforeAll(async () => {
  proxy = await startCuttingProxy(testDatabaseUrl());
  // No timer of Passbook's own may send a statement while the proxy counts a request's: neither
  // the key refresh nor the token cache's change feed, whose heartbeat is a statement a second.
  passbook = await startTestPassbook({
    DATABASE_URL: proxy.url,
    KEY_REFRESH_INTERVAL: '3600',
    TOKEN_CACHE_MAX_AGE: '0',
  });
  direct = createKnex(testDatabaseUrl(), 2);
  customer = await createTestCustomer(passbook.knex);
  app = await registerTestApp(passbook);
  config = await discoverAs(passbook, app);
}, 60_000);

afterAll(async () => {
  await passbook?.close();
  await direct?.destroy();
  await proxy?.close();
});

interface Outcome {
  status: number;
  error?: string;
}

async function outcomeOf(request: Promise<unknown>): Promise<Outcome> {
  try {
    await request;
    return { status: 200 };
  } catch (error) {
    if (error instanceof oidc.ResponseBodyError) return { status: error.status, error: error.error };
    // openid-client reads an error body only from a 4xx; a 503 comes with the response itself.
    const cause: unknown = error instanceof Error ? error.cause : undefined;
    if (!(cause instanceof Response)) throw error;
    const body = (await cause.json()) as { error?: string };
    return { status: cause.status, ...(body.error ? { error: body.error } : {}) };
  }
}

/** Sends `request` with the connection cut before its statement `n`; what the app got, and what was cut. */
/** Sends `request` with the answer to its statement `n` lost after PostgreSQL got the statement. */
async function answerLostAt(n: number, request: () => Promise<unknown>) {
  proxy.loseAnswerAt(n);
  const outcome = await outcomeOf(request());
  const cut = proxy.cut?.sql;
  proxy.relax();
  return { outcome, cut };
}

async function cutBefore(n: number, request: () => Promise<unknown>) {
  proxy.cutAt(n);
  const outcome = await outcomeOf(request());
  const cut = proxy.cut?.sql;
  proxy.relax();
  return { outcome, cut };
}

/** How many statements `request` sends when nothing is cut. */
async function statementsOf<T>(request: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
  proxy.count();
  const result = await request();
  const statements = [...proxy.statements];
  proxy.relax();
  return { result, statements };
}

interface TokenRow {
  id: string;
  consumed_at: Date | null;
  payload: { rotations?: number };
}

/** The grant's refresh tokens: exactly one live, the app's, and every consumed one has its successor. */
async function expectUnbrokenChain(grantId: string, current: string): Promise<void> {
  const grant: { id: string } | undefined = await direct('oidc_models')
    .where({ kind: 'Grant', id: grantId })
    .first('id');
  expect(grant).toBeDefined();
  const tokens: TokenRow[] = await direct('oidc_models')
    .where({ kind: 'RefreshToken', grant_id: grantId })
    .select('id', 'consumed_at', 'payload');
  const live = tokens.filter((token) => token.consumed_at === null).map((token) => token.id);
  expect(live).toEqual([current]);
  const rotations = tokens.map((token) => token.payload.rotations ?? 0).sort((a, b) => a - b);
  const newest = tokens.find((token) => token.id === current)?.payload.rotations ?? 0;
  // Pruning keeps the newest consumed ones; whatever is kept runs without a gap up to the app's.
  expect(rotations).toEqual(rotations.map((_, index) => newest - rotations.length + 1 + index));
}

function activityOfCustomer(): Promise<number> {
  return direct('audit_events')
    .where({ customer_id: customer.id })
    .count<{ count: string }[]>()
    .then(([row]) => Number(row?.count));
}

/**
 * A new code, signed in and consented to by the customer. Their activity (a sign-in and a
 * consent) is written after each request commits: the proxy must not count it as the next one's.
 */
async function newCode(): Promise<{ request: AuthorizationRequest; callbackUrl: string }> {
  const activity = await activityOfCustomer();
  const request = await authorizationRequest(config, 'openid offline_access');
  const callbackUrl = await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
  expect(await eventually(async () => (await activityOfCustomer()) === activity + 2)).toBe(true);
  return { request, callbackUrl };
}

function grantOf(token: string): Promise<{ grant_id: string } | undefined> {
  return direct('oidc_models').where({ kind: 'RefreshToken', id: token }).first('grant_id');
}

/** A new grant's refresh token, refreshed once with its statements counted; the rotated token. */
async function refreshedOnce() {
  const { request, callbackUrl } = await newCode();
  const exchanged = await exchangeCode(config, callbackUrl, request);
  const first = String(exchanged.refresh_token);
  const grantId = String((await grantOf(first))?.grant_id);
  const { result, statements } = await statementsOf(() => oidc.refreshTokenGrant(config, first));
  return {
    grantId,
    statements,
    refreshToken: String(result.refresh_token),
    accessToken: result.access_token,
  };
}

test('a refresh cut off before any one of its statements answers 503, and the same refresh token then works', async () => {
  const refreshed = await refreshedOnce();
  const { grantId, statements } = refreshed;
  let { refreshToken, accessToken } = refreshed;
  const cuts: string[] = [];
  for (let n = 1; n <= statements.length; n += 1) {
    const { outcome, cut } = await cutBefore(n, () => oidc.refreshTokenGrant(config, refreshToken));
    expect({ n, cut, outcome }).toEqual({
      n,
      cut,
      outcome: { status: 503, error: 'temporarily_unavailable' },
    });
    cuts.push(String(cut));
    await expectUnbrokenChain(grantId, refreshToken);

    const tokens = await oidc.refreshTokenGrant(config, refreshToken);
    refreshToken = String(tokens.refresh_token);
    accessToken = tokens.access_token;
    await expectUnbrokenChain(grantId, refreshToken);
  }
  // The token and its grant, the customer, then one statement that writes everything (the
  // consume, the two new tokens) and the Sync that commits it; each was cut once.
  expect(statements.length).toBeGreaterThanOrEqual(4);
  expect(statements.at(-1)).toBe(COMMIT_BY_SYNC);
  expect(writesTheTokens(String(statements.at(-2)))).toBe(true);
  expect(cuts).toContain(COMMIT_BY_SYNC);
  const writes = cuts.filter(writesTheTokens);
  expect(writes).toHaveLength(1);
  expect(writes[0]).toMatch(/UPDATE oidc_models SET consumed_at/);
  expect(writes[0]?.match(/INSERT INTO oidc_models/g)).toHaveLength(2);
  const introspection = await oidc.tokenIntrospection(config, accessToken);
  expect(introspection.active).toBe(true);
}, 120_000);

test('a code exchange cut off before any one of its statements answers 503, and the same code then works', async () => {
  const first = await newCode();
  const { statements } = await statementsOf(() => exchangeCode(config, first.callbackUrl, first.request));

  const cuts: string[] = [];
  for (let n = 1; n <= statements.length; n += 1) {
    const { request, callbackUrl } = await newCode();
    const code = new URL(callbackUrl).searchParams.get('code') ?? '';
    const { outcome, cut } = await cutBefore(n, () => exchangeCode(config, callbackUrl, request));
    expect({ n, cut, outcome }).toEqual({
      n,
      cut,
      outcome: { status: 503, error: 'temporarily_unavailable' },
    });
    cuts.push(String(cut));
    const stored: { consumed_at: Date | null } | undefined = await direct('oidc_models')
      .where({ kind: 'AuthorizationCode', id: code })
      .first('consumed_at');
    expect(stored).toEqual({ consumed_at: null });

    const tokens = await exchangeCode(config, callbackUrl, request);
    const grant = await grantOf(String(tokens.refresh_token));
    const accessTokens = await direct('oidc_models').where({
      kind: 'AccessToken',
      grant_id: grant?.grant_id,
    });
    expect(accessTokens).toHaveLength(1);
    await expectUnbrokenChain(String(grant?.grant_id), String(tokens.refresh_token));
  }
  expect(statements.at(-1)).toBe(COMMIT_BY_SYNC);
  expect(cuts).toContain(COMMIT_BY_SYNC);
  expect(cuts.filter(writesTheTokens)).toHaveLength(1);
}, 180_000);

/** The one statement that stores a token request's writes (src/oidc/storage/held-writes.ts). */
function writesTheTokens(sql: string): boolean {
  return sql.startsWith('WITH consumed_0 AS (UPDATE oidc_models SET consumed_at');
}

test('a commit lost on the way answers 503, and the tokens it would have given were never stored', async () => {
  const { request, callbackUrl } = await newCode();
  const tokens = await exchangeCode(config, callbackUrl, request);
  const refreshToken = String(tokens.refresh_token);
  const { statements } = await statementsOf(() => oidc.refreshTokenGrant(config, refreshToken));
  const fresh = await newCode();
  const next = await exchangeCode(config, fresh.callbackUrl, fresh.request);
  const before = await direct('oidc_models').where({ kind: 'AccessToken' }).count<{ count: string }[]>();

  const { outcome, cut } = await cutBefore(statements.length, () =>
    oidc.refreshTokenGrant(config, String(next.refresh_token)),
  );
  expect(cut).toBe(COMMIT_BY_SYNC);
  expect(outcome).toEqual({ status: 503, error: 'temporarily_unavailable' });
  const after = await direct('oidc_models').where({ kind: 'AccessToken' }).count<{ count: string }[]>();
  expect(after).toEqual(before);
  const old: { consumed_at: Date | null } | undefined = await direct('oidc_models')
    .where({ kind: 'RefreshToken', id: String(next.refresh_token) })
    .first('consumed_at');
  expect(old).toEqual({ consumed_at: null });
}, 60_000);

test('the write of a refresh that reached PostgreSQL but whose answer was lost is not stored, and the retry works', async () => {
  const { grantId, refreshToken, statements } = await refreshedOnce();
  const write = statements.findIndex(writesTheTokens) + 1;
  expect(write).toBeGreaterThan(0);
  const before = await direct('oidc_models').where({ kind: 'AccessToken' }).count<{ count: string }[]>();

  // Were it to commit on its own, PostgreSQL would store it though the app got a 503, and the
  // app's retry of the same refresh token would then look like reuse and end the grant.
  const { outcome, cut } = await answerLostAt(write, () => oidc.refreshTokenGrant(config, refreshToken));
  expect(writesTheTokens(String(cut))).toBe(true);
  expect(outcome).toEqual({ status: 503, error: 'temporarily_unavailable' });
  expect(await direct('oidc_models').where({ kind: 'AccessToken' }).count()).toEqual(before);
  await expectUnbrokenChain(grantId, refreshToken);

  const retried = await oidc.refreshTokenGrant(config, refreshToken);
  await expectUnbrokenChain(grantId, String(retried.refresh_token));
}, 60_000);

test('a refresh whose commit reached PostgreSQL but whose answer was lost answers its tokens, and they work', async () => {
  const { grantId, refreshToken, statements } = await refreshedOnce();
  const commit = statements.lastIndexOf(COMMIT_BY_SYNC) + 1;
  expect(commit).toBe(statements.length);

  // PostgreSQL commits, and the answer never reaches Passbook: it asks PostgreSQL on another
  // connection what became of the transaction, rather than answering 503 for tokens it stored
  // (the app's retry would then look like reuse and end the grant).
  proxy.loseAnswerAt(commit);
  const settled = await oidc.refreshTokenGrant(config, refreshToken).finally(() => proxy.relax());
  expect(proxy.cut?.sql).toBe(COMMIT_BY_SYNC);
  await expectUnbrokenChain(grantId, String(settled.refresh_token));
  expect((await oidc.tokenIntrospection(config, settled.access_token)).active).toBe(true);

  const next = await oidc.refreshTokenGrant(config, String(settled.refresh_token));
  await expectUnbrokenChain(grantId, String(next.refresh_token));
}, 60_000);

test('a code exchange whose commit reached PostgreSQL but whose answer was lost answers its tokens', async () => {
  const first = await newCode();
  const { statements } = await statementsOf(() => exchangeCode(config, first.callbackUrl, first.request));
  const commit = statements.lastIndexOf(COMMIT_BY_SYNC) + 1;
  expect(commit).toBe(statements.length);
  const { request, callbackUrl } = await newCode();

  proxy.loseAnswerAt(commit);
  const tokens = await exchangeCode(config, callbackUrl, request).finally(() => proxy.relax());
  expect(proxy.cut?.sql).toBe(COMMIT_BY_SYNC);
  const grant = await grantOf(String(tokens.refresh_token));
  await expectUnbrokenChain(String(grant?.grant_id), String(tokens.refresh_token));
  expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(true);
}, 60_000);
