import type { Knex } from '../../src/db/knex.ts';

/**
 * Describes a migrated database as readable SQL: every table with its columns, constraints and
 * comment, then every index and trigger, in a stable order, and the functions triggers call. `schema.sql` at the top of the project is this
 * text for a freshly migrated database (`npm run schema` writes it), and a test compares the two,
 * so a reader sees every table without replaying the migrations. knex's own bookkeeping tables
 * are left out.
 */

const BOOKKEEPING = new Set(['knex_migrations', 'knex_migrations_lock']);

interface TableRow {
  schema: string;
  name: string;
  comment: string | null;
}

interface ColumnRow {
  schema: string;
  table: string;
  name: string;
  type: string;
  not_null: boolean;
  default: string | null;
}

interface ConstraintRow {
  schema: string;
  table: string;
  name: string;
  definition: string;
}

interface IndexRow {
  schema: string;
  table: string;
  name: string;
  definition: string;
}

interface TriggerRow {
  schema: string;
  table: string;
  name: string;
  definition: string;
}

interface FunctionRow {
  name: string;
  definition: string;
}

async function rows<T>(knex: Knex, sql: string): Promise<T[]> {
  const result = await knex.raw<{ rows: T[] }>(sql);
  return result.rows;
}

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`;

function tables(knex: Knex): Promise<TableRow[]> {
  return rows(
    knex,
    `SELECT n.nspname AS schema, c.relname AS name, obj_description(c.oid, 'pg_class') AS comment
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND ${USER_SCHEMAS}
      ORDER BY n.nspname, c.relname`,
  );
}

function columns(knex: Knex): Promise<ColumnRow[]> {
  return rows(
    knex,
    `SELECT n.nspname AS schema, c.relname AS table, a.attname AS name,
            format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
            pg_get_expr(d.adbin, d.adrelid) AS default
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND ${USER_SCHEMAS}
      ORDER BY n.nspname, c.relname, a.attnum`,
  );
}

function constraints(knex: Knex): Promise<ConstraintRow[]> {
  return rows(
    knex,
    `SELECT n.nspname AS schema, c.relname AS table, k.conname AS name,
            pg_get_constraintdef(k.oid) AS definition
       FROM pg_constraint k
       JOIN pg_class c ON c.oid = k.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE k.contype IN ('p', 'u', 'f', 'c', 'x') AND ${USER_SCHEMAS}
      ORDER BY n.nspname, c.relname, position(k.contype::text in 'puxfc'), k.conname`,
  );
}

function indexes(knex: Knex): Promise<IndexRow[]> {
  // Indexes that back a constraint are shown with the constraint, not again here.
  return rows(
    knex,
    `SELECT i.schemaname AS schema, i.tablename AS table, i.indexname AS name, i.indexdef AS definition
       FROM pg_indexes i
      WHERE i.schemaname NOT IN ('pg_catalog', 'information_schema')
        AND NOT EXISTS (
          SELECT 1 FROM pg_constraint k
           JOIN pg_class ic ON ic.oid = k.conindid
           JOIN pg_namespace n ON n.oid = ic.relnamespace
          WHERE ic.relname = i.indexname AND n.nspname = i.schemaname)
      ORDER BY i.schemaname, i.tablename, i.indexname`,
  );
}

function triggers(knex: Knex): Promise<TriggerRow[]> {
  return rows(
    knex,
    `SELECT n.nspname AS schema, c.relname AS "table", t.tgname AS name,
       pg_get_triggerdef(t.oid) AS definition
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND ${USER_SCHEMAS}
     ORDER BY n.nspname, c.relname, t.tgname`,
  );
}

/** The functions of the user's schemas that triggers call. */
function triggerFunctions(knex: Knex): Promise<FunctionRow[]> {
  return rows(
    knex,
    `SELECT p.proname AS name, pg_get_functiondef(p.oid) AS definition
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.prorettype = 'trigger'::regtype AND ${USER_SCHEMAS}
     ORDER BY n.nspname, p.proname`,
  );
}

function qualified(schema: string, name: string): string {
  return `${schema}.${name}`;
}

function describeTable(table: TableRow, cols: ColumnRow[], cons: ConstraintRow[]): string {
  const width = Math.max(...cols.map((column) => column.name.length));
  const lines = [
    ...cols.map((column) => {
      const parts = [column.name.padEnd(width), column.type];
      if (column.not_null) parts.push('NOT NULL');
      if (column.default !== null) parts.push(`DEFAULT ${column.default}`);
      return `  ${parts.join(' ')}`;
    }),
    ...cons.map((constraint) => `  CONSTRAINT ${constraint.name} ${constraint.definition}`),
  ];
  const comment = table.comment ? `${table.comment.replace(/^/gm, '-- ')}\n` : '';
  return `${comment}CREATE TABLE ${qualified(table.schema, table.name)} (\n${lines.join(',\n')}\n);`;
}

export async function describeSchema(knex: Knex): Promise<string> {
  const [allTables, allColumns, allConstraints, allIndexes, allTriggers, functions] = await Promise.all([
    tables(knex),
    columns(knex),
    constraints(knex),
    indexes(knex),
    triggers(knex),
    triggerFunctions(knex),
  ]);
  const kept = allTables.filter((table) => !BOOKKEEPING.has(table.name));
  const belongs = (table: TableRow) => (row: { schema: string; table: string }) =>
    row.schema === table.schema && row.table === table.name;
  const sections = kept.map((table) => {
    const tableIndexes = allIndexes.filter(belongs(table)).map((index) => `${index.definition};`);
    const tableTriggers = allTriggers.filter(belongs(table)).map((trigger) => `${trigger.definition};`);
    return [
      describeTable(table, allColumns.filter(belongs(table)), allConstraints.filter(belongs(table))),
      ...tableIndexes,
      ...tableTriggers,
    ].join('\n');
  });
  const functionSections = functions.map((fn) => `${fn.definition.trim()};`);
  return `${[...functionSections, ...sections].join('\n\n')}\n`;
}

export const SCHEMA_HEADER = `-- Passbook's database as its migrations leave it: every table, column, constraint, index and trigger.
-- Generated by \`npm run schema\` from a freshly migrated database, and checked by a test.
-- Read it here; change the schema with a new file in migrations/, then run \`npm run schema\`.

`;
