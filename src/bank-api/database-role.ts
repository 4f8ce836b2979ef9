import { escapeIdentifier, escapeLiteral } from 'pg';
import type { Knex } from '../db/knex.ts';
import { BANK_SCHEMA } from './migrate.ts';

/**
 * The bank API's database role: a login that can use its own schema and nothing of Passbook's.
 * `provisionBankApiRole` sets one up with an admin connection (the demo and the tests do; an
 * operator runs the SQL in docs/bank-api.md instead), and `confinementProblems` says what such a
 * role could still reach that it should not, so both the provisioning and the bank API's own
 * start-up can refuse a role that could read customers' password hashes or the signing keys.
 */

export interface BankApiRole {
  name: string;
  password: string;
}

export class BankApiRoleError extends Error {
  override name = 'BankApiRoleError';
}

/** Plain lower-case names only: roles are cluster-wide, and these end up in SQL and in URLs. */
const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

// knex.raw reads every `?` as a binding placeholder, even inside a quoted literal.
function sqlLiteral(value: string): string {
  return escapeLiteral(value).replaceAll('?', '\\?');
}

interface RoleRow {
  rolsuper: boolean;
  rolcreaterole: boolean;
  rolcreatedb: boolean;
  rolreplication: boolean;
  rolbypassrls: boolean;
}

async function rows<T>(knex: Knex, sql: string, bindings: readonly string[]): Promise<T[]> {
  const result = await knex.raw<{ rows: T[] }>(sql, bindings);
  return result.rows;
}

/**
 * Everything `role` may do beyond its own schema, in words; empty when it is properly confined.
 * Checked from the catalogue, so it sees privileges granted to PUBLIC, through memberships and
 * by default privileges alike, on every relation outside the bank's schema.
 */
export async function confinementProblems(knex: Knex, role: string): Promise<string[]> {
  const problems: string[] = [];
  const [attributes] = await rows<RoleRow>(
    knex,
    `SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
       FROM pg_roles WHERE rolname = ?`,
    [role],
  );
  if (!attributes) return [`the role "${role}" does not exist`];
  const flags: [keyof RoleRow, string][] = [
    ['rolsuper', 'SUPERUSER'],
    ['rolcreaterole', 'CREATEROLE'],
    ['rolcreatedb', 'CREATEDB'],
    ['rolreplication', 'REPLICATION'],
    ['rolbypassrls', 'BYPASSRLS'],
  ];
  for (const [column, flag] of flags) {
    if (attributes[column]) problems.push(`it has ${flag}`);
  }
  const memberships = await rows<{ rolname: string }>(
    knex,
    `SELECT r.rolname FROM pg_auth_members m
       JOIN pg_roles r ON r.oid = m.roleid
       JOIN pg_roles me ON me.oid = m.member
      WHERE me.rolname = ? ORDER BY 1`,
    [role],
  );
  for (const { rolname } of memberships) problems.push(`it is a member of "${rolname}"`);
  const relations = await rows<{ name: string }>(
    knex,
    `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
        AND n.nspname NOT IN (?, 'pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_%'
        AND (CASE WHEN c.relkind = 'S'
                  THEN has_sequence_privilege(?, c.oid, 'SELECT, USAGE, UPDATE')
                  ELSE has_table_privilege(?, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
             END)
      ORDER BY 1 LIMIT 20`,
    [BANK_SCHEMA, role, role],
  );
  for (const { name } of relations) problems.push(`it may use ${name}`);
  const schemas = await rows<{ nspname: string }>(
    knex,
    `SELECT nspname FROM pg_namespace
      WHERE nspname <> ? AND has_schema_privilege(?, oid, 'CREATE') ORDER BY 1`,
    [BANK_SCHEMA, role],
  );
  for (const { nspname } of schemas) problems.push(`it may create objects in the schema "${nspname}"`);
  const functions = await rows<{ name: string }>(
    knex,
    `SELECT p.oid::regprocedure::text AS name
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE p.prosecdef AND n.nspname NOT IN (?, 'pg_catalog', 'information_schema')
        AND has_function_privilege(?, p.oid, 'EXECUTE')
      ORDER BY 1 LIMIT 20`,
    [BANK_SCHEMA, role],
  );
  for (const { name } of functions) problems.push(`it may run the SECURITY DEFINER function ${name}`);
  return problems;
}

/** Throws, naming every problem, unless `role` is confined to the bank's schema. */
export async function assertConfined(knex: Knex, role: string): Promise<void> {
  const problems = await confinementProblems(knex, role);
  if (problems.length > 0) {
    throw new BankApiRoleError(
      `the database role "${role}" must reach only the schema "${BANK_SCHEMA}", but ${problems.join('; ')} (docs/bank-api.md)`,
    );
  }
}

/**
 * Creates the role if it is missing, sets its password, lets it connect to this database and
 * gives it the bank's schema; running it again changes nothing but the password. `admin` must be
 * a connection to the bank API's database that may create roles and schemas (a superuser, in the
 * demo and the tests). Nothing is granted on Passbook's tables, and nothing needs revoking on
 * PostgreSQL 15 and later, where PUBLIC may no longer create in the public schema; on an older
 * server, or one where someone granted more to PUBLIC, the closing check refuses with the reason.
 */
export async function provisionBankApiRole(admin: Knex, role: BankApiRole): Promise<void> {
  if (!ROLE_NAME.test(role.name)) {
    throw new BankApiRoleError(`a role name must match ${ROLE_NAME} (got ${JSON.stringify(role.name)})`);
  }
  if (role.password.length < 16) throw new BankApiRoleError('the role password must be 16+ characters');
  const name = escapeIdentifier(role.name);
  const password = sqlLiteral(role.password);
  const existing = await rows<{ rolname: string }>(admin, 'SELECT rolname FROM pg_roles WHERE rolname = ?', [
    role.name,
  ]);
  if (existing.length === 0) {
    try {
      await admin.raw(`CREATE ROLE ${name} LOGIN PASSWORD ${password}`);
    } catch (error) {
      // Another process created it meanwhile: then it only needs the rest, like an existing one.
      if ((error as { code?: string }).code !== '42710') throw error;
    }
  }
  await admin.raw(`ALTER ROLE ${name} LOGIN PASSWORD ${password}`);
  const [{ database } = { database: '' }] = await rows<{ database: string }>(
    admin,
    'SELECT current_database() AS database',
    [],
  );
  // PUBLIC may connect by default, but an operator may have taken that away.
  await admin.raw(`GRANT CONNECT ON DATABASE ${escapeIdentifier(database)} TO ${name}`);
  const schema = escapeIdentifier(BANK_SCHEMA);
  await admin.raw(`CREATE SCHEMA IF NOT EXISTS ${schema} AUTHORIZATION ${name}`);
  const [owner] = await rows<{ owner: string }>(
    admin,
    'SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = ?',
    [BANK_SCHEMA],
  );
  if (owner?.owner !== role.name) await admin.raw(`ALTER SCHEMA ${schema} OWNER TO ${name}`);
  await assertConfined(admin, role.name);
}

/** `url` (any connection to the same database) with the role's name and password instead. */
export function bankApiDatabaseUrl(url: string, role: BankApiRole): string {
  const parsed = new URL(url);
  parsed.username = encodeURIComponent(role.name);
  parsed.password = encodeURIComponent(role.password);
  return parsed.href;
}
