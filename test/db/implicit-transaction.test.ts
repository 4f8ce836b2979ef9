import pg from 'pg';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import { writeInImplicitTransaction } from '../../src/db/implicit-transaction.ts';
import { createLogger } from '../../src/log.ts';
import { isDatabaseUnavailable } from '../../src/db/unavailable.ts';
import { testDatabaseUrl } from '../support/passbook.ts';

/**
 * The statement made before its commit, against real PostgreSQL: invisible to others until the
 * Sync, visible after; gone after a rollback, a failure or a lost connection; and the pool's
 * connections still sound afterwards.
 */

let knex: Knex;
let observer: pg.Client;
const TABLE = 'implicit_transaction_test';
const INSERT = `INSERT INTO ${TABLE} (id, note, at) VALUES (?, ?, ?) RETURNING id, note, at, pg_current_xact_id()::text AS xid`;

beforeAll(async () => {
  knex = createKnex(testDatabaseUrl(), 2, createLogger({ logLevel: 'silent' }));
  await knex.raw(`DROP TABLE IF EXISTS ${TABLE}`);
  await knex.raw(`CREATE TABLE ${TABLE} (id integer PRIMARY KEY, note text, at timestamptz)`);
  observer = new pg.Client({ connectionString: testDatabaseUrl() });
  await observer.connect();
});

afterAll(async () => {
  await knex.raw(`DROP TABLE IF EXISTS ${TABLE}`);
  await observer.end();
  await knex.destroy();
});

async function stored(id: number): Promise<boolean> {
  const { rows } = await observer.query(`SELECT 1 FROM ${TABLE} WHERE id = $1`, [id]);
  return rows.length === 1;
}

test('the statement answers its rows, is seen by no one before the commit, and by everyone after', async () => {
  const at = new Date('2026-12-03T10:00:00.000Z');
  const written = await writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [
    1,
    'first',
    at,
  ]);
  expect(written.rows).toEqual([{ id: 1, note: 'first', at, xid: written.rows[0]?.xid }]);
  expect(String(written.rows[0]?.xid)).toMatch(/^\d+$/);
  expect(await stored(1)).toBe(false);
  await written.commit();
  expect(await stored(1)).toBe(true);
});

test('the same named statement again, on a connection that has parsed it, and beside knex', async () => {
  for (const id of [2, 3, 4]) {
    const written = await writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [
      id,
      null,
      null,
    ]);
    await written.commit();
  }
  const [a, b] = await Promise.all([
    writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [5, 'a', null]),
    writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [6, 'b', null]),
  ]);
  await Promise.all([a.commit(), b.commit()]);
  for (const id of [2, 3, 4, 5, 6]) expect(await stored(id)).toBe(true);
  const { rows } = await knex.raw<{ rows: { n: number }[] }>(`SELECT count(*)::int AS n FROM ${TABLE}`);
  expect(rows[0]?.n).toBe(6);
});

test('a rollback drops the statement, and the row it locked is free at once', async () => {
  const written = await writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [
    7,
    'dropped',
    null,
  ]);
  written.rollBack();
  const again = await writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [7, 'kept', null]);
  await again.commit();
  const { rows } = await observer.query(`SELECT note FROM ${TABLE} WHERE id = 7`);
  expect(rows).toEqual([{ note: 'kept' }]);
});

test("a statement PostgreSQL refuses rejects, changes nothing, and leaves the pool's connections sound", async () => {
  await expect(
    writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [1, 'duplicate', null]),
  ).rejects.toThrow(/duplicate key/);
  const { rows } = await observer.query(`SELECT note FROM ${TABLE} WHERE id = 1`);
  expect(rows).toEqual([{ note: 'first' }]);
  for (let i = 0; i < 4; i += 1) {
    const { rows: status } = await knex.raw<{ rows: { in_transaction: boolean }[] }>(
      `SELECT now() <> statement_timestamp() AS in_transaction`,
    );
    expect(status[0]?.in_transaction).toBe(false);
  }
});

test('a connection ended before the commit rolls the statement back, and the commit rejects', async () => {
  const written = await writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [
    8,
    'lost',
    null,
  ]);
  const { rows } = await observer.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE backend_xid::text = $1`,
    [String(written.rows[0]?.xid)],
  );
  await observer.query('SELECT pg_terminate_backend($1, 2000)', [rows[0]?.pid]);
  // The client has seen the connection end before the commit is asked for: the commit's answer
  // is that loss, which the app answers 503 (retry), never an error of its own.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const failure: unknown = await written.commit().then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(isDatabaseUnavailable(failure)).toBe(true);
  expect(await stored(8)).toBe(false);
  const again = await writeInImplicitTransaction(knex, 'passbook_implicit_insert', INSERT, [
    8,
    'retried',
    null,
  ]);
  await again.commit();
  expect(await stored(8)).toBe(true);
});
