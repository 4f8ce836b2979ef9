import type { Knex } from '../db/knex.ts';
import type { Logger } from '../log.ts';
import { purgeExpired } from './adapter.ts';

interface PgConnection {
  query(sql: string, values: unknown[]): Promise<{ rows: { locked?: boolean }[] }>;
}

/** Only one process purges at a time; the others skip that round. */
const PURGE_LOCK = 7_425_002;

/** Purges expired rows if no other process is doing it now; returns how many, or undefined if skipped. */
export async function purgeOnce(knex: Knex): Promise<number | undefined> {
  // A session-level lock, so that the batches themselves run outside one long transaction.
  const connection: PgConnection = await knex.client.acquireConnection();
  try {
    const { rows } = await connection.query('SELECT pg_try_advisory_lock($1) AS locked', [PURGE_LOCK]);
    if (!rows[0]?.locked) return undefined;
    try {
      return await purgeExpired(knex);
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [PURGE_LOCK]);
    }
  } finally {
    await knex.client.releaseConnection(connection);
  }
}

/** Purges on a timer that never keeps the process alive; a failed round is logged and retried next time. */
export function startPurgeTimer(knex: Knex, intervalSeconds: number, log: Logger): () => void {
  if (intervalSeconds === 0) return () => {};
  let running = false;
  const timer = setInterval(async () => {
    if (running) return;
    running = true;
    try {
      const purged = await purgeOnce(knex);
      if (purged) log.info({ purged }, 'purged expired rows');
    } catch (error) {
      log.warn({ err: error }, 'purge failed; will retry');
    } finally {
      running = false;
    }
  }, intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
