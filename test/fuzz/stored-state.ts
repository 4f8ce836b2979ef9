import type { Knex } from '../../src/db/knex.ts';

/**
 * Everything the fuzzed servers have stored, row by row, and what may differ after the run.
 * Every table is compared row for row, with three exceptions that a hostile request may cause
 * legitimately and that are checked precisely instead:
 *
 * - A signed-in Session is saved again on every use (its idle window slides) and keeps the
 *   sign-out form's secret in `state`: its `exp`, `iat`, `state` and `expires_at` may change,
 *   nothing else (not its customer, not its authorizations).
 * - GET /session/end saves an anonymous Session (no customer) for its sign-out form's secret:
 *   new Session rows without a customer may appear; they hold no account and expire.
 * - A request the fuzzer happened to make valid is stored: an Interaction for an /auth answered
 *   with a redirect to /interaction/:uid, a PushedAuthorizationRequest for a /request answered
 *   201. The test collects those uids and ids from the answers, and only those rows may appear.
 */

type Row = Record<string, unknown>;

export interface StoredState {
  /** Table name to rows, each keyed by its primary key. */
  tables: Map<string, Map<string, Row>>;
}

/** Every table of the database, schema-qualified outside `public` (the bank's ledger may have its own). */
async function tableNames(knex: Knex): Promise<string[]> {
  const { rows } = await knex.raw<{ rows: { name: string }[] }>(
    `SELECT CASE WHEN table_schema = 'public' THEN table_name ELSE table_schema || '.' || table_name END AS name
       FROM information_schema.tables
      WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'
      ORDER BY 1`,
  );
  return rows.map((row) => row.name);
}

async function primaryKey(knex: Knex, table: string): Promise<string[]> {
  const { rows } = await knex.raw<{ rows: { attname: string }[] }>(
    `SELECT a.attname FROM pg_index i
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
      WHERE i.indrelid = ?::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
    [table],
  );
  return rows.map((row) => row.attname);
}

export async function storedState(knex: Knex): Promise<StoredState> {
  const tables = new Map<string, Map<string, Row>>();
  for (const table of await tableNames(knex)) {
    const key = await primaryKey(knex, table);
    const { rows } = await knex.raw<{ rows: { row: Row }[] }>(`SELECT to_jsonb(t) AS row FROM ?? t`, [table]);
    const byKey = new Map<string, Row>();
    for (const { row } of rows) {
      const id = key.length ? JSON.stringify(key.map((column) => row[column])) : JSON.stringify(row);
      byKey.set(id, row);
    }
    tables.set(table, byKey);
  }
  return { tables };
}

/** Rows per table, and oidc_models rows per kind: the figures a failure message starts with. */
export function counts(state: StoredState): Record<string, number> {
  const figures: Record<string, number> = {};
  for (const [table, rows] of state.tables) {
    figures[table] = rows.size;
    if (table !== 'oidc_models') continue;
    for (const row of rows.values()) {
      const kind = `oidc_models:${String(row.kind)}`;
      figures[kind] = (figures[kind] ?? 0) + 1;
    }
  }
  return figures;
}

/** What valid requests of the run stored, as read from their answers. */
export interface AcceptedRequests {
  interactionUids: Set<string>;
  pushedRequestIds: Set<string>;
}

/** A signed-in Session as it must stay: without what every save and the sign-out form change. */
function sessionEssentials(row: Row): Row {
  const essentials: Row = { ...row, payload: { ...(row.payload as Row | undefined) } };
  delete essentials.expires_at;
  for (const member of ['exp', 'iat', 'state']) delete (essentials.payload as Row)[member];
  return essentials;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function mayAppear(row: Row, accepted: AcceptedRequests): boolean {
  if (row.kind === 'Session') return row.customer_id === null;
  if (row.kind === 'Interaction') return accepted.interactionUids.has(String(row.id));
  if (row.kind === 'PushedAuthorizationRequest') return accepted.pushedRequestIds.has(String(row.id));
  return false;
}

/** Every difference between two states that the rules above do not allow, in words. */
const COUNTS_FAILURES = new Set(['sign_in_throttle']);

export function unexpectedChanges(
  before: StoredState,
  after: StoredState,
  accepted: AcceptedRequests,
): string[] {
  const problems: string[] = [];
  for (const [table, rowsBefore] of before.tables) {
    // Failed attempts are counted there on purpose: that is the limit on guessing doing its job.
    if (COUNTS_FAILURES.has(table)) continue;
    const rowsAfter = after.tables.get(table) ?? new Map<string, Row>();
    for (const [id, row] of rowsBefore) {
      const now = rowsAfter.get(id);
      if (!now) {
        problems.push(`${table} ${id} was deleted`);
        continue;
      }
      const isSignedInSession = table === 'oidc_models' && row.kind === 'Session' && row.customer_id !== null;
      const unchanged = isSignedInSession
        ? sameJson(sessionEssentials(row), sessionEssentials(now))
        : sameJson(row, now);
      if (!unchanged)
        problems.push(`${table} ${id} changed: ${JSON.stringify(row)} -> ${JSON.stringify(now)}`);
    }
    for (const [id, row] of rowsAfter) {
      if (rowsBefore.has(id)) continue;
      if (table === 'oidc_models' && mayAppear(row, accepted)) continue;
      problems.push(`${table} ${id} appeared: ${JSON.stringify(row)}`);
    }
  }
  for (const table of after.tables.keys()) {
    if (!before.tables.has(table)) problems.push(`table ${table} appeared`);
  }
  return problems;
}
