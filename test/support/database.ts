import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { bankApiDatabaseUrl, provisionBankApiRole } from '../../src/bank-api/database-role.ts';
import { migrateBankApi } from '../../src/bank-api/migrate.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.ts';
import { createKnex } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/log.ts';

/**
 * Each test run gets a database of its own, created before the first test and dropped after the
 * last: on TEST_DATABASE_URL or DATABASE_URL when set, else on a throwaway embedded PostgreSQL.
 * The bank API gets a role of its own for the run, dropped after the last test too.
 */

export interface TestDatabaseServer {
  /** The server's maintenance database, from which run databases are created and dropped. */
  adminUrl: string;
  embedded?: { database: EmbeddedDatabase; dir: string };
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.href;
}

export async function startTestDatabaseServer(): Promise<TestDatabaseServer> {
  const configured = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (configured) return { adminUrl: withDatabase(configured, 'postgres') };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'passbook-test-pg-'));
  // mkdtemp makes it 0700; as root, PostgreSQL runs as `postgres` and must be let in.
  await chmod(dir, 0o755);
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const database = await startEmbeddedPostgres(dir, port, createLogger({ logLevel: 'silent' }));
  return { adminUrl: withDatabase(database.url, 'postgres'), embedded: { database, dir } };
}

export async function stopTestDatabaseServer(server: TestDatabaseServer): Promise<void> {
  if (!server.embedded) return;
  await server.embedded.database.stop();
  await rm(server.embedded.dir, { recursive: true, force: true });
  // Outside dir when `postgres` could not reach it (a private TMPDIR, as root).
  await rm(server.embedded.database.clusterDir, { recursive: true, force: true });
}

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Every test database's data encryption key, base64url. */
export const RUN_DATA_ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64url');

/**
 * Creates a fresh database migrated as it runs for real: Passbook's tables by Passbook, and the
 * bank API's schema by the bank API, as its own role (see provisionRunBankApiRole). Returns the
 * database's URL (with the server's admin credentials) and the bank API's.
 */
export async function createRunDatabaseWithBankApi(
  adminUrl: string,
): Promise<{ url: string; bankApiUrl: string }> {
  const name = `passbook_test_${Date.now()}_${randomBytes(4).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
  const url = withDatabase(adminUrl, name);
  const knex = createKnex(url, 2);
  try {
    await migrate(knex);
    // The data key generated in development, fixed: the tests that start in production name it in
    // DATA_ENCRYPTION_KEY, and every process on the database must open the signing keys.
    await knex('data_encryption_keys').insert({ secret: RUN_DATA_ENCRYPTION_KEY });
  } finally {
    await knex.destroy();
  }
  return { url, bankApiUrl: await provisionRunBankApiRole(url) };
}

/** Creates a fresh, migrated database and returns its URL. */
export async function createRunDatabase(adminUrl: string): Promise<string> {
  return (await createRunDatabaseWithBankApi(adminUrl)).url;
}

/** Drops the database, then the roles named after it (see runRoleName), which owned objects in it. */
export async function dropRunDatabase(adminUrl: string, url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await dropRunRoles(adminUrl, url);
}

function databaseName(url: string): string {
  return new URL(url).pathname.slice(1);
}

/**
 * A role name that belongs to one run database: roles are server-wide, so a fixed name would be
 * shared, and fought over, by parallel runs on one server. Every such role starts with the
 * database's name, which is how dropRunDatabase finds them all.
 */
export function runRoleName(runDatabaseUrl: string, purpose: string): string {
  return `${databaseName(runDatabaseUrl)}_${purpose}`;
}

/**
 * Gives the run database the bank API's own role and schema, as an operator would, and applies
 * the bank API's migrations as that role (so that it owns its tables, as in production). Returns
 * the bank API's database URL. `runDatabaseUrl` carries the server's admin credentials.
 */
async function provisionRunBankApiRole(runDatabaseUrl: string): Promise<string> {
  const role = {
    name: runRoleName(runDatabaseUrl, 'bank_api'),
    password: randomBytes(24).toString('base64url'),
  };
  const admin = createKnex(runDatabaseUrl, 1);
  try {
    await provisionBankApiRole(admin, role);
  } finally {
    await admin.destroy();
  }
  const url = bankApiDatabaseUrl(runDatabaseUrl, role);
  const bank = createKnex(url, 2);
  try {
    await migrateBankApi(bank);
  } finally {
    await bank.destroy();
  }
  return url;
}

/**
 * Drops every role named after the database (see runRoleName), once the database is gone: a role
 * that still owns objects elsewhere cannot be dropped, and is reported instead.
 */
async function dropRunRoles(adminUrl: string, runDatabaseUrl: string): Promise<void> {
  const prefix = `${databaseName(runDatabaseUrl)}_`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ rolname: string }>(
      'SELECT rolname FROM pg_roles WHERE left(rolname, length($1)) = $1',
      [prefix],
    );
    for (const { rolname } of rows) {
      try {
        await client.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(rolname)}`);
      } catch (error) {
        process.stderr.write(
          `test teardown: could not drop the role ${rolname}: ${(error as Error).message}\n`,
        );
      }
    }
  } finally {
    await client.end();
  }
}
