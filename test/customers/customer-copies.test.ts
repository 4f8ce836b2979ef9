import * as oidc from 'openid-client';
import { createLogger } from '../../src/log.ts';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import {
  changePassword,
  findCustomer,
  findCustomerById,
  type Customer,
} from '../../src/customers/customers.ts';
import { requestTransaction } from '../../src/db/request-transaction.ts';
import { requestListener } from '../../src/service/kit.ts';
import { CustomerCopies } from '../../src/customers/customer-copies.ts';
import { startModelChangeFeed, type ModelChangeFeed } from '../../src/oidc/storage/change-feed.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  testDatabaseUrl,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';
import { eventually } from '../support/eventually.ts';

/**
 * The customer copies (src/customers/customer-copies.ts) against real PostgreSQL and its real
 * change feed: a copy answers the second lookup, dies as soon as its row's claims change or the
 * row goes (from anywhere: here plain SQL on another connection), outlives a change to what it
 * does not hold, and with the feed down every lookup reads the database.
 */

let passbook: TestPassbook;
let feed: ModelChangeFeed;
let copies: CustomerCopies;
let customer: TestCustomer;
let reads = 0;

beforeAll(async () => {
  passbook = await startTestPassbook();
  feed = startModelChangeFeed(testDatabaseUrl(), { log: createLogger({ logLevel: 'silent' }) });
  copies = new CustomerCopies(feed, { maxAgeMs: 30_000, maxEntries: 100 });
  customer = await createTestCustomer(passbook.knex, 'Ada Lovelace');
  expect(await eventually(() => Promise.resolve(feed.isLive()), 5_000)).toBe(true);
}, 60_000);

afterAll(async () => {
  await feed?.close();
  await passbook?.close();
});

function find(id = customer.id): Promise<Customer | undefined> {
  return copies.find(id, () => {
    reads += 1;
    return findCustomerById(passbook.knex, id);
  });
}

async function rename(name: string): Promise<void> {
  await passbook.knex('customers').where({ id: customer.id }).update({ name, updated_at: new Date() });
}

test('a second lookup is answered from the copy, and a change to the claims ends it at once', async () => {
  reads = 0;
  expect((await find())?.name).toBe('Ada Lovelace');
  expect((await find())?.name).toBe('Ada Lovelace');
  expect(reads).toBe(1);

  await rename('Ada King');
  expect(await eventually(async () => (await find())?.name === 'Ada King', 2_000)).toBe(true);
  expect(reads).toBe(2);
});

test('a change to what no copy holds (the password hash) keeps the copy', async () => {
  await find();
  reads = 0;
  await passbook.knex('customers').where({ id: customer.id }).update({
    password_hash: '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$changedchangedchangedchangedchangedchan',
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  await find();
  expect(reads).toBe(0);
});

test('a copy handed out is the caller’s own', async () => {
  const first = await find();
  if (!first) throw new Error('the customer is not found');
  first.name = 'changed by a caller';
  expect((await find())?.name).not.toBe('changed by a caller');
});

test('a customer deleted is not found from a copy', async () => {
  const gone = await createTestCustomer(passbook.knex, 'Soon Gone');
  expect((await find(gone.id))?.name).toBe('Soon Gone');
  await passbook.knex('customers').where({ id: gone.id }).delete();
  expect(await eventually(async () => (await find(gone.id)) === undefined, 2_000)).toBe(true);
});

/** Runs `work` as the one route of an app inside its request transaction, as every request runs. */
async function inRequest(work: () => Promise<void>): Promise<void> {
  const app = new Koa();
  app.use(requestTransaction(passbook.knex));
  app.use(async (ctx) => {
    await work();
    ctx.status = 204;
  });
  const server = http.createServer(requestListener(app)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    expect(response.status).toBe(204);
  } finally {
    server.close();
  }
}

test('a request that has changed a customer reads them past the copy, and sees its own change', async () => {
  const changing = await createTestCustomer(passbook.knex, 'Grace Hopper');
  const copied = await findCustomer(passbook.knex, changing.id, copies);
  const seen: (Date | undefined)[] = [];
  await inRequest(async () => {
    seen.push((await findCustomer(passbook.knex, changing.id, copies))?.updated_at);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await changePassword(passbook.knex, changing.id, changing.password, 'a brand new password')).toBe(
      'changed',
    );
    seen.push((await findCustomer(passbook.knex, changing.id, copies))?.updated_at);
  });
  expect(seen[0]).toEqual(copied?.updated_at);
  expect(seen[1]?.getTime()).toBeGreaterThan(seen[0]?.getTime() ?? Infinity);
});

test('with the feed down every lookup reads the database, and the copies are forgotten', async () => {
  await find();
  expect(copies.size).toBeGreaterThan(0);
  await passbook.knex.raw('SELECT pg_terminate_backend(?)', [feed.backendPid() ?? 0]);
  expect(await eventually(() => Promise.resolve(!feed.isLive()), 5_000)).toBe(true);
  expect(copies.size).toBe(0);
  reads = 0;
  await find();
  await find();
  expect(reads).toBe(2);
  expect(await eventually(() => Promise.resolve(feed.isLive()), 10_000)).toBe(true);
});

describe('on a running node', () => {
  let app: RegisteredClient;

  beforeAll(async () => {
    app = await registerTestApp(passbook);
  });

  test('UserInfo keeps the customer it read, and shows a renamed customer at once', async () => {
    const owner = await createTestCustomer(passbook.knex, 'Grace Hopper');
    const { tokens, config } = await completeFlow(passbook, app, owner, 'openid profile');
    const nodeCopies = passbook.tokenCache?.customers;
    if (!nodeCopies) throw new Error('the node runs without a token cache');
    expect((await oidc.fetchUserInfo(config, tokens.access_token, owner.id)).name).toBe('Grace Hopper');
    const kept = nodeCopies.size;
    expect(kept).toBeGreaterThan(0);

    await passbook.knex('customers').where({ id: owner.id }).update({ name: 'Grace Brewster Hopper' });
    expect(
      await eventually(
        async () =>
          (await oidc.fetchUserInfo(config, tokens.access_token, owner.id)).name === 'Grace Brewster Hopper',
        2_000,
      ),
    ).toBe(true);
  });
});
