import type { Knex } from './knex.ts';

/**
 * PostgreSQL advisory locks that coordinate Passbook processes sharing one database. Each key is
 * listed here so that no two uses collide.
 */
export const LOCKS = {
  keyCreation: 7_425_001,
  purge: 7_425_002,
  migrations: 7_425_003,
} as const;

interface PgConnection {
  query(sql: string, values: unknown[]): Promise<{ rows: { locked?: boolean }[] }>;
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
  const connection: PgConnection = await knex.client.acquireConnection();
  try {
    if (options.wait) {
      await connection.query('SELECT pg_advisory_lock($1)', [key]);
    } else {
      const { rows } = await connection.query('SELECT pg_try_advisory_lock($1) AS locked', [key]);
      if (!rows[0]?.locked) return undefined;
    }
    try {
      return await work();
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [key]);
    }
  } finally {
    await knex.client.releaseConnection(connection);
  }
}
