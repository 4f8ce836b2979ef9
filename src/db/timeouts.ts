/**
 * How long each service waits for its database, as both services' configurations read it
 * (docs/operations.md, "When the database is slow or away"). A database that is up answers in
 * milliseconds; one that is stopped, unreachable or hanging must turn into a 503 within seconds,
 * never a request that waits for as long as the client does.
 */

export interface DatabaseTimeouts {
  /**
   * PostgreSQL cancels a statement that runs longer (statement_timeout); the client gives up a
   * second after that, for a server that has stopped answering altogether.
   */
  statementMs: number;
  /** A connection attempt that takes longer fails. */
  connectMs: number;
  /** A query waits this long at most for a connection of the pool. */
  acquireMs: number;
}

export const DEFAULT_DATABASE_TIMEOUTS: DatabaseTimeouts = {
  statementMs: 3_000,
  connectMs: 2_000,
  acquireMs: 3_000,
};

type Env = Record<string, string | undefined>;

function readMilliseconds(
  env: Env,
  name: string,
  fallback: number,
  fail: (message: string) => Error,
): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 100 || value > 600_000) {
    throw fail(`${name} must be a number of milliseconds from 100 to 600000 (got ${JSON.stringify(raw)})`);
  }
  return value;
}

/** DATABASE_STATEMENT_TIMEOUT_MS, DATABASE_CONNECT_TIMEOUT_MS and DATABASE_ACQUIRE_TIMEOUT_MS. */
export function readDatabaseTimeouts(env: Env, fail: (message: string) => Error): DatabaseTimeouts {
  return {
    statementMs: readMilliseconds(
      env,
      'DATABASE_STATEMENT_TIMEOUT_MS',
      DEFAULT_DATABASE_TIMEOUTS.statementMs,
      fail,
    ),
    connectMs: readMilliseconds(
      env,
      'DATABASE_CONNECT_TIMEOUT_MS',
      DEFAULT_DATABASE_TIMEOUTS.connectMs,
      fail,
    ),
    acquireMs: readMilliseconds(
      env,
      'DATABASE_ACQUIRE_TIMEOUT_MS',
      DEFAULT_DATABASE_TIMEOUTS.acquireMs,
      fail,
    ),
  };
}
