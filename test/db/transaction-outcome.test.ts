import pg from 'pg';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import { transactionOutcome } from '../../src/db/transaction-outcome.ts';
import { testDatabaseUrl } from '../support/passbook.ts';

/**
 * What became of a transaction, asked by its id on another connection, against real PostgreSQL:
 * committed, rolled back, and still open on a backend whose client went silent, which is ended
 * so that the answer is final.
 */

let knex: Knex;
let client: pg.Client;

beforeAll(() => {
  knex = createKnex(testDatabaseUrl(), 2);
});

beforeEach(async () => {
  client = new pg.Client({ connectionString: testDatabaseUrl() });
  await client.connect();
  client.on('error', () => undefined);
});

afterEach(async () => {
  await client.end().catch(() => undefined);
});

afterAll(async () => {
  await knex.destroy();
});

/** Begins a transaction on `client` that has an id, and answers the id. */
async function begunTransaction(): Promise<string> {
  await client.query('BEGIN');
  const { rows } = await client.query<{ id: string }>('SELECT pg_current_xact_id()::text AS id');
  return String(rows[0]?.id);
}

test('a committed transaction is committed', async () => {
  const id = await begunTransaction();
  await client.query('COMMIT');
  expect(await transactionOutcome(knex, id)).toBe('committed');
});

test('a rolled-back transaction is aborted', async () => {
  const id = await begunTransaction();
  await client.query('ROLLBACK');
  expect(await transactionOutcome(knex, id)).toBe('aborted');
});

test('a transaction still open is ended with its backend, and is then aborted for good', async () => {
  const id = await begunTransaction();
  expect(await transactionOutcome(knex, id)).toBe('aborted');
  // Its backend is gone: the connection can no longer commit it.
  await expect(client.query('COMMIT')).rejects.toThrow();
});

test('a transaction PostgreSQL has never seen, or a database that cannot be asked, is unknown', async () => {
  expect(await transactionOutcome(knex, '999999999999')).toBe('unknown');
  const away = createKnex('postgres://postgres@127.0.0.1:1/none', 1);
  try {
    expect(await transactionOutcome(away, '1')).toBe('unknown');
  } finally {
    await away.destroy();
  }
});
