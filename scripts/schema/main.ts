import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createKnex } from '../../src/db/knex.ts';
import { createRunDatabase, dropRunDatabase } from '../../test/support/database.ts';
import { SCHEMA_HEADER, describeSchema } from './describe.ts';

/**
 * `npm run schema`: migrates a throwaway database on DATABASE_URL's server (or the machine's
 * PostgreSQL at 127.0.0.1:5432), describes it, writes schema.sql, and drops the database.
 */

const SCHEMA_FILE = path.resolve(import.meta.dirname, '../../schema.sql');
const server = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

const url = await createRunDatabase(server);
const knex = createKnex(url, 2);
try {
  await writeFile(SCHEMA_FILE, SCHEMA_HEADER + (await describeSchema(knex)));
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
} finally {
  await knex.destroy();
  await dropRunDatabase(server, url);
}
