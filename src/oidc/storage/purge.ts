import type { Knex } from '../../db/knex.ts';
import { LOCKS, withSessionLock } from '../../db/locks.ts';
import type { Logger } from '../../log.ts';
import { deleteInBatches } from './table.ts';

/** The expiry purge of `oidc_models`: rows past their expiry are never read, and removed here. */

/** Removes expired rows in batches; returns how many. Safe to run beside live traffic. */
export async function purgeExpired(knex: Knex, now = new Date()): Promise<number> {
  return deleteInBatches(knex, (query) => query.where('expires_at', '<=', now));
}

/** Another table's clean-up, run in the same round under the same lock; returns rows removed. */
export type PurgeTask = (knex: Knex) => Promise<number>;

/**
 * Purges expired rows (and runs the other tasks) unless another process is doing it now; returns
 * how many rows went, or undefined if skipped.
 */
export function purgeOnce(knex: Knex, tasks: readonly PurgeTask[] = []): Promise<number | undefined> {
  return withSessionLock(knex, LOCKS.purge, { wait: false }, async () => {
    let purged = await purgeExpired(knex);
    for (const task of tasks) purged += await task(knex);
    return purged;
  });
}

/**
 * Purges on a timer that never keeps the process alive; a failed round is logged and retried next
 * time. The function returned stops the timer and waits for a round under way, so that shutdown
 * can close the pool after it.
 */
export function startPurgeTimer(
  knex: Knex,
  intervalSeconds: number,
  log: Logger,
  tasks: readonly PurgeTask[] = [],
): () => Promise<void> {
  if (intervalSeconds === 0) return async () => {};
  let running: Promise<void> | undefined;
  // A round reports its own failure, so the timer has nothing to wait for.
  const round = async () => {
    try {
      const purged = await purgeOnce(knex, tasks);
      if (purged) log.info({ purged }, 'purged expired rows');
    } catch (error) {
      log.warn({ err: error }, 'purge failed; will retry');
    } finally {
      running = undefined;
    }
  };
  const timer = setInterval(() => {
    running ??= round();
  }, intervalSeconds * 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
