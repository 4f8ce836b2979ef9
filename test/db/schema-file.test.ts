import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import { SCHEMA_HEADER, describeSchema } from '../../scripts/schema/describe.ts';
import { testDatabaseUrl } from '../support/passbook.ts';
import { PROJECT_ROOT } from '../support/project.ts';

/** schema.sql is what the migrations build: a reader may trust it instead of replaying them. */

let knex: Knex;

beforeAll(() => {
  knex = createKnex(testDatabaseUrl(), 2);
});

afterAll(async () => {
  await knex.destroy();
});

test('schema.sql describes exactly the migrated database (run `npm run schema` after a migration)', async () => {
  const committed = await readFile(path.join(PROJECT_ROOT, 'schema.sql'), 'utf8');
  expect(committed).toBe(SCHEMA_HEADER + (await describeSchema(knex)));
});

test('every table names the module that owns it', async () => {
  const description = await describeSchema(knex);
  const tables = [...description.matchAll(/^CREATE TABLE (\S+)/gm)].map((match) => match[1]);
  const owned = [...description.matchAll(/Owner: [^\n]+\n(?:-- [^\n]*\n)*CREATE TABLE (\S+)/g)].map(
    (match) => match[1],
  );
  expect(tables.length).toBeGreaterThan(0);
  expect(owned).toEqual(tables);
});
