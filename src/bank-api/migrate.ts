import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { withPooledConnection, type Knex } from '../db/knex.ts';
import { appliedMigrationNames, requireMigrationsApplied } from '../db/migrate.ts';

/**
 * The bank API's own migrations: plain SQL files in src/bank-api/migrations/, applied in name
 * order by the bank API itself, with its own role, into its own schema. Knex's bookkeeping tables
 * live in that schema too (bank.knex_migrations), so Passbook's migrator never sees these files
 * and the bank API never needs a right on Passbook's schema.
 */

export const BANK_SCHEMA = 'bank';

const MIGRATIONS_DIR = path.resolve(import.meta.dirname, 'migrations');

/**
 * A two-key advisory lock: PostgreSQL keeps two-key locks apart from single-key ones, so this can
 * never collide with Passbook's locks (src/db/locks.ts), which share the database.
 */
const MIGRATION_LOCK = { service: 0x62616e6b /* "bank" */, purpose: 1 } as const;

export class BankSchemaError extends Error {
  override name = 'BankSchemaError';
}

const sqlMigrationSource: Knex.MigrationSource<string> = {
  async getMigrations() {
    const files = await readdir(MIGRATIONS_DIR);
    return files.filter((file) => file.endsWith('.sql')).sort();
  },
  getMigrationName(file) {
    return file;
  },
  async getMigration(file) {
    const sql = await readFile(path.join(MIGRATIONS_DIR, file), 'utf8');
    return {
      // knex.raw would read a `?` (a JSON operator in SQL) as a binding placeholder.
      up: (knex: Knex) => knex.raw(sql.replaceAll('?', '\\?')),
      down: () => {
        throw new Error('migrations are forward-only');
      },
    };
  },
};

/**
 * The schema is created by whoever provisions the role (src/bank-api/database-role.ts, or an
 * operator), because creating a schema needs a right on the database that the bank API's role
 * should not have. Say so plainly rather than let knex fail on its bookkeeping table.
 */
async function requireWritableSchema(knex: Knex): Promise<void> {
  const { rows } = await knex.raw<{ rows: { writable: boolean }[] }>(
    `SELECT has_schema_privilege(oid, 'CREATE') AS writable FROM pg_namespace WHERE nspname = ?`,
    [BANK_SCHEMA],
  );
  const [schema] = rows;
  if (!schema) {
    throw new BankSchemaError(
      `the schema "${BANK_SCHEMA}" does not exist: provision the bank API's database role first (docs/bank-api.md)`,
    );
  }
  if (!schema.writable) {
    throw new BankSchemaError(
      `the bank API's role may not create tables in the schema "${BANK_SCHEMA}": it should own it (docs/bank-api.md)`,
    );
  }
}

/**
 * Applies every pending migration of the bank API; returns the names applied. Replicas starting
 * together queue on the lock instead of failing on knex's own.
 */
export async function migrateBankApi(knex: Knex): Promise<string[]> {
  await requireWritableSchema(knex);
  const { service, purpose } = MIGRATION_LOCK;
  return withPooledConnection(knex, async (connection) => {
    await connection.query('SELECT pg_advisory_lock($1, $2)', [service, purpose]);
    try {
      return appliedMigrationNames(
        await knex.migrate.latest({
          migrationSource: sqlMigrationSource,
          schemaName: BANK_SCHEMA,
          tableName: 'knex_migrations',
        }),
      );
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1, $2)', [service, purpose]);
    }
  });
}

/** A readiness check: throws while one of the bank API's migrations has not been applied. */
export function requireBankMigrationsApplied(knex: Knex): Promise<void> {
  return requireMigrationsApplied(knex, {
    migrationSource: sqlMigrationSource,
    schemaName: BANK_SCHEMA,
  });
}
