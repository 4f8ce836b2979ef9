import { withPooledConnection, type Knex, type PooledConnection } from './knex.ts';

/**
 * PostgreSQL advisory locks that coordinate Passbook processes sharing one database. Each key is
 * listed here so that no two uses collide.
 */
export const LOCKS = {
  keyCreation: 7_425_001,
  purge: 7_425_002,
  migrations: 7_425_003,
} as const;

/** How often a process waiting for a lock asks again, and how long it waits at most. */
const RETRY_MS = 200;
const WAIT_AT_MOST_MS = 10 * 60 * 1000;

/**
 * Waits for the lock by asking again and again rather than with one blocking pg_advisory_lock:
 * every statement must finish within the statement timeout (src/db/timeouts.ts), and a process
 * migrating a large table may hold the lock for longer than that.
 */
async function waitForLock(connection: PooledConnection, key: number): Promise<void> {
  const giveUpAt = Date.now() + WAIT_AT_MOST_MS;
  while (!(await tryLock(connection, key))) {
    if (Date.now() > giveUpAt) throw new Error(`waited ${WAIT_AT_MOST_MS / 1000} s for lock ${key}`);
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

async function tryLock(connection: PooledConnection, key: number): Promise<boolean> {
  const { rows } = await connection.query('SELECT pg_try_advisory_lock($1) AS locked', [key]);
  return isLocked(rows[0]);
}

/**
 * Runs `work` while holding a session-level lock on its own pooled connection, so that the work
 * itself may use other connections and short transactions. With `wait: false` it returns
 * undefined at once when another process holds the lock. Needs a pool of at least two.
 */
export async function withSessionLock<T>(
  knex: Knex,
  key: number,
  options: { wait: boolean },
  work: () => Promise<T>,
): Promise<T | undefined> {
  return withPooledConnection(knex, async (connection) => {
    if (options.wait) await waitForLock(connection, key);
    else if (!(await tryLock(connection, key))) return undefined;
    try {
      return await work();
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [key]);
    }
  });
}

function isLocked(row: unknown): boolean {
  return typeof row === 'object' && row !== null && 'locked' in row && row.locked === true;
}
