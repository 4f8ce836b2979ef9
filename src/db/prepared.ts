import { createHash } from 'node:crypto';
import type { Knex } from './knex.ts';

/**
 * Statements on the hot paths (every token request's lookups and writes) as named prepared
 * statements: PostgreSQL parses and plans each text once per connection, not once per request.
 * The name is derived from the text, so one text is always one name. A connection pooler in
 * front of PostgreSQL must keep each client on its server connection (session pooling) for this.
 */

const names = new Map<string, string>();
/** Distinct texts named at most; beyond it (it should never be reached) statements go unnamed. */
const NAMES_KEPT = 1_000;

/** The name of `sql` as a prepared statement; none once the names kept are used up. */
export function statementName(sql: string): string | undefined {
  const known = names.get(sql);
  if (known) return known;
  if (names.size >= NAMES_KEPT) return undefined;
  const name = `passbook_${createHash('sha256').update(sql).digest('base64url').slice(0, 20)}`;
  names.set(sql, name);
  return name;
}

export function preparedRaw<T>(db: Knex, sql: string, bindings: readonly Knex.RawBinding[]): Knex.Raw<T> {
  const raw = db.raw<T>(sql, bindings);
  const name = statementName(sql);
  return name ? raw.options({ name }) : raw;
}
