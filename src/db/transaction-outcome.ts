import type { Knex } from './knex.ts';

/**
 * Owner of one question: did a transaction whose COMMIT went unanswered commit? The connection
 * was lost after COMMIT left, so PostgreSQL may have committed it, or may still be about to. On
 * a connection of its own this asks PostgreSQL by the transaction's id (`pg_current_xact_id()`,
 * read by a statement the transaction made anyway). A transaction still in progress belongs to a
 * backend that has not yet noticed its client is gone: that backend is ended, waiting for it to
 * exit, and then the answer is final, since an ended backend's transaction commits only if its
 * commit record was already written.
 */

export type TransactionOutcome = 'committed' | 'aborted' | 'unknown';

/** How long to wait for the lost connection's backend to exit once told to. */
const BACKEND_EXIT_WAIT_MS = 2_000;

/** The text form of `pg_current_xact_id()`: a 64-bit transaction id in decimal. */
export function isTransactionId(value: unknown): value is string {
  return typeof value === 'string' && /^\d{1,20}$/.test(value);
}

async function statusOf(knex: Knex, transactionId: string): Promise<string | undefined> {
  const { rows } = await knex.raw<{ rows: { status: string | null }[] }>(
    'SELECT pg_xact_status(?::xid8) AS status',
    [transactionId],
  );
  return rows[0]?.status ?? undefined;
}

async function endBackendHolding(knex: Knex, transactionId: string): Promise<void> {
  await knex.raw(
    `SELECT pg_terminate_backend(pid, ?) FROM pg_stat_activity WHERE backend_xid = xid(?::xid8)`,
    [BACKEND_EXIT_WAIT_MS, transactionId],
  );
}

/**
 * What became of `transactionId`; 'unknown' when PostgreSQL cannot be asked (it is away too) or
 * the backend holding it does not exit in time. Never throws.
 */
export async function transactionOutcome(knex: Knex, transactionId: string): Promise<TransactionOutcome> {
  try {
    let status = await statusOf(knex, transactionId);
    if (status === 'in progress') {
      await endBackendHolding(knex, transactionId);
      status = await statusOf(knex, transactionId);
    }
    if (status === 'committed') return 'committed';
    if (status === 'aborted') return 'aborted';
    return 'unknown';
  } catch {
    return 'unknown';
  }
}
