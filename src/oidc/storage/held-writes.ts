import type { AdapterPayload } from 'oidc-provider';
import type { Knex } from '../../db/knex.ts';
import type { WriteTarget } from '../../db/request-transaction.ts';
import { TABLE } from './table.ts';
import { isTransactionId } from '../../db/transaction-outcome.ts';

/**
 * The writes of one request to `oidc_models`, held back and made as one statement when the
 * request settles (src/db/request-transaction.ts `beforeCommit`): a refresh's consumed token, its
 * two new tokens and the grant's last use are one round trip instead of four; an authorization
 * request resumed after consent ends its interaction, stores the code and renews the session in
 * one. They are made inside the request's transaction (where they are the request's only write,
 * that statement is the whole transaction, committed a round trip sooner). The statement is
 * atomic by itself: every held write happens only if every held consume succeeds, and a consume
 * that another request won first makes the whole statement change nothing and throw `lostConsume`.
 *
 * Two writes to one row cannot share a statement (its parts see one snapshot); such a batch is
 * made one write at a time, in the request's transaction.
 */

export interface ModelRowWrite {
  kind: string;
  id: string;
  payload: AdapterPayload;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  customer_id: string | null;
  client_id: string | null;
  expires_at: Date | null;
}

export type HeldWrite =
  | { type: 'upsert'; row: ModelRowWrite }
  | { type: 'consume'; kind: string; id: string; at: Date }
  | { type: 'destroy'; kind: string; id: string }
  | { type: 'grant-used'; grantId: string; at: Date; unlessSince: Date }
  | { type: 'prune-consumed'; grantId: string; keep: number };

/** How often last_used_at is written at most: the account pages need minutes, not milliseconds. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** Grants this process wrote last_used_at for lately, and when: most token requests need not write it. */
const recentlyMarked = new Map<string, number>();
const RECENTLY_MARKED_KEPT = 10_000;

/**
 * The last use to record for a grant used now, or undefined when this process recorded one less
 * than a minute ago (another node's record may be newer still, which is as good).
 */
export function grantUseToRecord(
  grantId: string,
  now = new Date(),
): { at: Date; unlessSince: Date } | undefined {
  const marked = recentlyMarked.get(grantId);
  if (marked !== undefined && now.getTime() - marked < LAST_USED_RESOLUTION_MS) return undefined;
  if (recentlyMarked.size >= RECENTLY_MARKED_KEPT) recentlyMarked.clear();
  recentlyMarked.set(grantId, now.getTime());
  return { at: now, unlessSince: new Date(now.getTime() - LAST_USED_RESOLUTION_MS) };
}

interface Statement {
  sql: string;
  bindings: Knex.RawBinding[];
}

const UPSERT_COLUMNS = 'kind, id, payload, grant_id, uid, user_code, customer_id, client_id, expires_at';
const ON_CONFLICT = `ON CONFLICT (kind, id) DO UPDATE SET payload = EXCLUDED.payload,
  grant_id = EXCLUDED.grant_id, uid = EXCLUDED.uid, user_code = EXCLUDED.user_code,
  customer_id = EXCLUDED.customer_id, client_id = EXCLUDED.client_id, expires_at = EXCLUDED.expires_at`;

/** One write, made only when `condition` (SQL) holds; a consume returns its row. */
function statementOf(write: HeldWrite, condition: string): Statement {
  switch (write.type) {
    case 'upsert': {
      const { row } = write;
      return {
        sql: `INSERT INTO ${TABLE} (${UPSERT_COLUMNS})
          SELECT ?, ?, ?::jsonb, ?, ?, ?, ?, ?, ?::timestamptz WHERE ${condition} ${ON_CONFLICT}`,
        bindings: [
          row.kind,
          row.id,
          JSON.stringify(row.payload),
          row.grant_id,
          row.uid,
          row.user_code,
          row.customer_id,
          row.client_id,
          row.expires_at,
        ],
      };
    }
    case 'consume':
      return {
        sql: `UPDATE ${TABLE} SET consumed_at = ? WHERE kind = ? AND id = ? AND consumed_at IS NULL RETURNING id`,
        bindings: [write.at, write.kind, write.id],
      };
    case 'destroy':
      return {
        sql: `DELETE FROM ${TABLE} WHERE kind = ? AND id = ? AND ${condition}`,
        bindings: [write.kind, write.id],
      };
    case 'grant-used':
      return {
        sql: `UPDATE ${TABLE} SET last_used_at = ? WHERE kind = 'Grant' AND id = ?
          AND (last_used_at IS NULL OR last_used_at < ?) AND ${condition}`,
        bindings: [write.at, write.grantId, write.unlessSince],
      };
    case 'prune-consumed':
      // Keeps the grant's `keep` most recently consumed refresh tokens, deletes older ones.
      return {
        sql: `DELETE FROM ${TABLE} WHERE kind = 'RefreshToken' AND grant_id = ? AND consumed_at IS NOT NULL
          AND id NOT IN (SELECT id FROM ${TABLE} WHERE kind = 'RefreshToken' AND grant_id = ?
            AND consumed_at IS NOT NULL ORDER BY consumed_at DESC LIMIT ?)
          AND ${condition}`,
        bindings: [write.grantId, write.grantId, write.keep],
      };
  }
}

/** The row a write touches, where it names one; a prune touches rows no other write does. */
function rowKey(write: HeldWrite): string | undefined {
  if (write.type === 'upsert') return `${write.row.kind}:${write.row.id}`;
  if (write.type === 'consume' || write.type === 'destroy') return `${write.kind}:${write.id}`;
  if (write.type === 'grant-used') return `Grant:${write.grantId}`;
  return undefined;
}

/** The kind of the rows a write changes. */
export function kindWritten(write: HeldWrite): string {
  if (write.type === 'upsert') return write.row.kind;
  if (write.type === 'grant-used') return 'Grant';
  if (write.type === 'prune-consumed') return 'RefreshToken';
  return write.kind;
}

/** A later upsert of a row replaces an earlier one: both write every column. */
function withoutSupersededUpserts(writes: HeldWrite[]): HeldWrite[] {
  const lastUpsert = new Map<string, number>();
  writes.forEach((write, index) => {
    if (write.type === 'upsert') lastUpsert.set(`${write.row.kind}:${write.row.id}`, index);
  });
  return writes.filter(
    (write, index) =>
      write.type !== 'upsert' || lastUpsert.get(`${write.row.kind}:${write.row.id}`) === index,
  );
}

function touchesOneRowTwice(writes: HeldWrite[]): boolean {
  const keys = writes.map(rowKey).filter((key) => key !== undefined);
  return new Set(keys).size !== keys.length;
}

/** The batch as one statement: consumes first, every other write conditional on all of them. */
function combined(writes: HeldWrite[]): { statement: Statement; consumes: HeldWrite[] } {
  const consumes = writes.filter((write) => write.type === 'consume');
  const others = writes.filter((write) => write.type !== 'consume');
  const condition = consumes.length
    ? consumes.map((_, index) => `EXISTS (SELECT 1 FROM consumed_${index})`).join(' AND ')
    : 'true';
  const parts = [
    ...consumes.map((write, index) => ({ name: `consumed_${index}`, ...statementOf(write, condition) })),
    ...others.map((write, index) => ({ name: `written_${index}`, ...statementOf(write, condition) })),
  ];
  const counts = consumes.map(
    (_, index) => `(SELECT count(*) FROM consumed_${index})::int AS consumed_${index}`,
  );
  return {
    consumes,
    statement: {
      sql: `WITH ${parts.map((part) => `${part.name} AS (${part.sql})`).join(',\n')}
        SELECT ${[...counts, 'pg_current_xact_id()::text AS transaction_id'].join(', ')}`,
      bindings: parts.flatMap((part) => part.bindings),
    },
  };
}

/**
 * Makes `writes` at `target`; throws `lostConsume(kind)` for a consume that found its row already
 * consumed (or gone), in which case nothing is written. Answers PostgreSQL's id of the
 * transaction the writes were made in, read by the one statement itself (none when they were
 * made one by one), by which a commit whose answer is lost can be settled.
 */
export async function makeHeldWrites(
  target: WriteTarget,
  writes: HeldWrite[],
  lostConsume: (kind: string) => Error,
): Promise<{ transactionId?: string }> {
  const batch = withoutSupersededUpserts(writes);
  if (batch.length === 0) return {};
  if (touchesOneRowTwice(batch)) {
    await makeOneByOne(await target.transaction(), batch, lostConsume);
    return {};
  }
  const { statement, consumes } = combined(batch);
  const rows = await target.statement(statement.sql, statement.bindings);
  const answer = rows[0] ?? {};
  consumes.forEach((write, index) => {
    if (answer[`consumed_${index}`] !== 1 && write.type === 'consume') throw lostConsume(write.kind);
  });
  const transactionId = answer.transaction_id;
  return isTransactionId(transactionId) ? { transactionId } : {};
}

/** One row touched twice: in order, all or nothing (a savepoint within the request's transaction). */
async function makeOneByOne(
  db: Knex,
  writes: HeldWrite[],
  lostConsume: (kind: string) => Error,
): Promise<void> {
  await db.transaction(async (trx) => {
    for (const write of writes) {
      const { sql, bindings } = statementOf(write, 'true');
      const { rows } = await trx.raw<{ rows: unknown[] }>(sql, bindings);
      if (write.type === 'consume' && rows.length === 0) throw lostConsume(write.kind);
    }
  });
}
