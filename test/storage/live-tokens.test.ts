import { createLogger } from '../../src/log.ts';
import { startModelChangeFeed, type ModelChangeFeed } from '../../src/oidc/storage/change-feed.ts';
import { LiveTokenCache, type TokenWithGrant } from '../../src/oidc/storage/live-tokens.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import {
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  testDatabaseUrl,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';
import { eventually } from '../support/eventually.ts';
import { scrape, total } from '../metrics/exposition.ts';

/**
 * The live-token cache (src/oidc/storage/live-tokens.ts) on two nodes of one database: a token
 * one node has answered for from memory is refused by it as soon as the other node, or anything
 * else, revokes it; with its change feed down or late, a node answers from the database only.
 */

let nodeA: TestPassbook;
let nodeB: TestPassbook;
let app: RegisteredClient;
let customer: TestCustomer;

beforeAll(async () => {
  [nodeA, nodeB] = await Promise.all([startTestPassbook(), startTestPassbook()]);
  customer = await createTestCustomer(nodeA.knex);
  app = await registerTestApp(nodeA);
  await Promise.all([feedLive(nodeA), feedLive(nodeB)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([nodeA?.close(), nodeB?.close()]);
});

function feedOf(node: TestPassbook): ModelChangeFeed {
  const feed = node.tokenCache?.feed;
  if (!feed) throw new Error('the node runs without a token cache');
  return feed;
}

async function feedLive(node: TestPassbook): Promise<void> {
  expect(await eventually(() => Promise.resolve(feedOf(node).isLive()), 5_000)).toBe(true);
}

async function post(node: TestPassbook, path: string, form: Record<string, string>): Promise<Response> {
  return fetch(`${node.issuer}${path}`, {
    method: 'POST',
    headers: {
      authorization: basicAuthorization(app),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form),
  });
}

async function isActive(node: TestPassbook, token: string): Promise<boolean> {
  const response = await post(node, '/token/introspection', { token, token_type_hint: 'access_token' });
  expect(response.status).toBe(200);
  return ((await response.json()) as { active: boolean }).active;
}

async function cacheHits(node: TestPassbook): Promise<number> {
  const { samples } = await scrape(node.metricsUrl);
  return total(samples, 'passbook_token_cache_lookups_total', { result: 'hit' });
}

async function newAccessToken(): Promise<string> {
  const { tokens } = await completeFlow(nodeA, app, customer, 'openid offline_access');
  return tokens.access_token;
}

/** B answers for the token from memory: its second answer is a cache hit. */
async function cachedOnB(token: string): Promise<void> {
  expect(await isActive(nodeB, token)).toBe(true);
  const hits = await cacheHits(nodeB);
  expect(await isActive(nodeB, token)).toBe(true);
  expect(await cacheHits(nodeB)).toBe(hits + 1);
}

/** Milliseconds until B first refuses the token, polling as fast as it answers. */
async function untilRefusedOnB(token: string, limitMs = 2_000): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < limitMs) {
    if (!(await isActive(nodeB, token))) return performance.now() - started;
  }
  throw new Error(`node B still answered active after ${limitMs} ms`);
}

test('a token revoked through node A is refused by node B, which held it in memory, within moments', async () => {
  const delays: number[] = [];
  for (let round = 0; round < 5; round += 1) {
    const token = await newAccessToken();
    await cachedOnB(token);
    const revoked = await post(nodeA, '/token/revocation', { token, token_type_hint: 'access_token' });
    expect(revoked.status).toBe(200);
    delays.push(await untilRefusedOnB(token));
  }
  // The bench measures the real figure under load (revocation delay); this bounds it loosely.
  expect(Math.max(...delays)).toBeLessThan(1_000);
});

test('a token revoked through the node that holds it is refused by that node at once', async () => {
  const token = await newAccessToken();
  await cachedOnB(token);
  const revoked = await post(nodeB, '/token/revocation', { token, token_type_hint: 'access_token' });
  expect(revoked.status).toBe(200);
  expect(await isActive(nodeB, token)).toBe(false);
});

test('a row changed outside the provider (an operator, the CLI) ends the copy too', async () => {
  const token = await newAccessToken();
  await cachedOnB(token);
  const row: { grant_id: string } | undefined = await nodeA
    .knex('oidc_models')
    .where({ kind: 'AccessToken', id: token })
    .first('grant_id');
  // The grant goes: every copy of a token under it goes with it, though the token's row stays.
  await nodeA.knex('oidc_models').where({ kind: 'Grant', id: row?.grant_id }).delete();
  await untilRefusedOnB(token);
});

test('with its change feed cut, node B forgets every copy and reads the database until the feed is back', async () => {
  const token = await newAccessToken();
  await cachedOnB(token);
  const feed = feedOf(nodeB);
  const pid = feed.backendPid();
  expect(pid).toBeDefined();
  await nodeA.knex.raw('SELECT pg_terminate_backend(?)', [pid ?? 0]);
  expect(await eventually(() => Promise.resolve(!feed.isLive()), 2_000)).toBe(true);
  expect(nodeB.tokenCache?.cache.size).toBe(0);

  // A revocation B could not have heard of: it is refused all the same, from the database.
  await nodeA.knex('oidc_models').where({ kind: 'AccessToken', id: token }).delete();
  expect(await isActive(nodeB, token)).toBe(false);

  // Back: a new connection, listening, its heartbeat heard; copies are kept again.
  await feedLive(nodeB);
  expect(feed.backendPid()).not.toBe(pid);
  const next = await newAccessToken();
  await cachedOnB(next);
}, 30_000);

describe('the cache on its own, on a real change feed', () => {
  const log = createLogger({ logLevel: 'silent' });
  let clock = Date.now();
  const now = () => clock;
  let feed: ModelChangeFeed;

  beforeAll(async () => {
    feed = startModelChangeFeed(testDatabaseUrl(), { log, now });
    expect(await eventually(() => Promise.resolve(feed.isLive()), 5_000)).toBe(true);
  });

  afterAll(async () => {
    await feed.close();
  });

  const row = (grantId: string, expiresInMs: number): TokenWithGrant => ({
    payload: { kind: 'AccessToken', jti: 'x' },
    consumed_at: null,
    expires_at: new Date(clock + expiresInMs),
    grant_id: grantId,
    grant_payload: { kind: 'Grant' },
    grant_expires_at: null,
  });

  function kept(cache: LiveTokenCache, id: string, found: TokenWithGrant): void {
    cache.endRead(cache.beginRead(id), found);
  }

  test('a copy ends at its maximum age and at its token’s expiry, whichever comes first', () => {
    const cache = new LiveTokenCache(feed, { maxAgeMs: 1_000, maxEntries: 10, now });
    kept(cache, 'long-lived', row('g1', 60_000));
    kept(cache, 'short-lived', row('g1', 500));
    expect(cache.lookup('long-lived')?.payload.jti).toBe('x');
    expect(cache.lookup('short-lived')).toBeDefined();
    clock += 600;
    expect(cache.lookup('short-lived')).toBeUndefined();
    expect(cache.lookup('long-lived')).toBeDefined();
    clock += 500;
    expect(cache.lookup('long-lived')).toBeUndefined();
  });

  test('a read overtaken by a change to its token, or to any grant, is not kept', () => {
    const cache = new LiveTokenCache(feed, { maxAgeMs: 10_000, maxEntries: 10, now });
    const read = cache.beginRead('t1');
    cache.changed({ kind: 'AccessToken', id: 't1' });
    cache.endRead(read, row('g1', 60_000));
    expect(cache.lookup('t1')).toBeUndefined();

    const other = cache.beginRead('t2');
    cache.changed({ kind: 'Grant', id: 'some grant' });
    cache.endRead(other, row('g2', 60_000));
    expect(cache.lookup('t2')).toBeUndefined();
  });

  test('each lookup hands out objects of its own', () => {
    const cache = new LiveTokenCache(feed, { maxAgeMs: 10_000, maxEntries: 10, now });
    kept(cache, 't3', row('g3', 60_000));
    const first = cache.lookup('t3');
    if (first) first.payload.jti = 'changed by a caller';
    expect(cache.lookup('t3')?.payload.jti).toBe('x');
  });

  test('a heartbeat not back within three seconds makes the feed not live, and the cache forgets', async () => {
    const cache = new LiveTokenCache(feed, { maxAgeMs: 60_000, maxEntries: 10, now });
    kept(cache, 't4', row('g4', 600_000));
    expect(cache.lookup('t4')).toBeDefined();
    clock += 3_500;
    expect(feed.isLive()).toBe(false);
    expect(cache.size).toBe(0);
    expect(cache.lookup('t4')).toBeUndefined();
    kept(cache, 't4', row('g4', 600_000));
    expect(cache.size).toBe(0);
    // The next heartbeat, heard on the moved clock, makes it live again.
    expect(await eventually(() => Promise.resolve(feed.isLive()), 3_000)).toBe(true);
  });
});
