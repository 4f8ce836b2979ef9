import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { LOCKS, withSessionLock } from './locks.ts';

const MIGRATIONS_DIR = path.resolve(import.meta.dirname, '../../migrations');

/**
 * Migrations are plain SQL files in migrations/, applied in name order, each in its own
 * transaction by knex's migrator (so a failed one leaves nothing behind). Reading them as text
 * keeps them independent of how the TypeScript around them is loaded.
 */
const sqlMigrationSource = (before: string | undefined): Knex.MigrationSource<string> => ({
  async getMigrations() {
    const files = await readdir(MIGRATIONS_DIR);
    return files.filter((file) => file.endsWith('.sql') && (before === undefined || file < before)).sort();
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
});

/** knex's migrator answers `[batch, names]`, typed as `any`: the names of what it just applied. */
export function appliedMigrationNames(result: unknown): string[] {
  if (Array.isArray(result)) {
    const names: unknown = result[1];
    if (Array.isArray(names) && names.every((name) => typeof name === 'string')) return names;
  }
  throw new Error("knex's migrator no longer answers [batch, names]");
}

/**
 * Applies every pending migration; returns the names applied. Processes starting together (two
 * replicas, the server and the CLI) queue on a lock instead of failing on knex's own.
 * @param before only the migrations named before this one: a database as an older release left it.
 */
export async function migrate(knex: Knex, { before }: { before?: string } = {}): Promise<string[]> {
  const applied = await withSessionLock(knex, LOCKS.migrations, { wait: true }, async () => {
    return appliedMigrationNames(await knex.migrate.latest({ migrationSource: sqlMigrationSource(before) }));
  });
  return applied ?? [];
}

/** knex's migrator lists `[completed, pending]`, typed as `any`: how many are still to apply. */
function pendingCount(listed: unknown): number {
  if (Array.isArray(listed) && Array.isArray(listed[1])) return listed[1].length;
  throw new Error("knex's migrator no longer lists [completed, pending]");
}

/**
 * A readiness check: throws while a migration in migrations/ has not been applied (another
 * replica is still migrating, or a deployment skipped it). Applied ones this code does not know,
 * from a newer release rolling out, are no reason to stop serving.
 */
export async function requireMigrationsApplied(
  knex: Knex,
  options: { migrationSource?: Knex.MigrationSource<string>; schemaName?: string } = {},
): Promise<void> {
  const pending = pendingCount(
    await knex.migrate.list({ migrationSource: sqlMigrationSource(undefined), ...options }),
  );
  if (pending > 0) throw new Error(`${pending} migration(s) not applied`);
}
