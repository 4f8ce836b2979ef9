import { withPooledConnection, type Knex } from './knex.ts';

/**
 * PostgreSQL advisory locks that coordinate Passbook processes sharing one database. Each key is
 * listed here so that no two uses collide.
 */
export const LOCKS = {
  keyCreation: 7_425_001,
  purge: 7_425_002,
  migrations: 7_425_003,
} as const;

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
    if (options.wait) {
      await connection.query('SELECT pg_advisory_lock($1)', [key]);
    } else {
      const { rows } = await connection.query('SELECT pg_try_advisory_lock($1) AS locked', [key]);
      if (!isLocked(rows[0])) return undefined;
    }
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
