import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.ts';
import { createKnex } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/log.ts';

/**
 * Each test run gets a database of its own, created before the first test and dropped after the
 * last: on TEST_DATABASE_URL or DATABASE_URL when set, else on a throwaway embedded PostgreSQL.
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
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const database = await startEmbeddedPostgres(dir, port, createLogger({ logLevel: 'silent' }));
  return { adminUrl: withDatabase(database.url, 'postgres'), embedded: { database, dir } };
}

export async function stopTestDatabaseServer(server: TestDatabaseServer): Promise<void> {
  if (!server.embedded) return;
  await server.embedded.database.stop();
  await rm(server.embedded.dir, { recursive: true, force: true });
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

/** Creates a fresh, migrated database and returns its URL. */
export async function createRunDatabase(adminUrl: string): Promise<string> {
  const name = `passbook_test_${Date.now()}_${randomBytes(4).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
  const url = withDatabase(adminUrl, name);
  const knex = createKnex(url, 2);
  try {
    await migrate(knex);
  } finally {
    await knex.destroy();
  }
  return url;
}

export async function dropRunDatabase(adminUrl: string, url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
