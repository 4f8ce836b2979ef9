import knexFactory, { type Knex } from 'knex';
import type { Logger } from '../service/kit.ts';

export type { Knex };

/** A statement that runs longer than this is a bug or an outage; fail it rather than hang. */
const STATEMENT_TIMEOUT_MS = 15_000;
/**
 * The same limit kept by the client, a second later: a server that vanished without closing the
 * socket (a cut network) never sends the statement timeout's error.
 */
const QUERY_TIMEOUT_MS = STATEMENT_TIMEOUT_MS + 1_000;
/** A database that is up answers a connection attempt at once; a dead one must fail fast. */
const CONNECT_TIMEOUT_MS = 2_000;
/**
 * How long a query waits for a pool connection. While the database is away every attempt fails,
 * and the request must answer 503 (src/db/unavailable.ts) within seconds rather than queue.
 */
const ACQUIRE_TIMEOUT_MS = 3_000;

/**
 * knex reports a lost or refused connection itself, on the console by default: through the
 * service's logger instead, so that an outage does not put plain-text lines into the JSON log.
 */
function knexLog(log: Logger): Knex.Logger {
  return {
    warn: (message: unknown) => log.warn({ detail: String(message) }, 'database warning'),
    error: (message: unknown) => log.error({ detail: String(message) }, 'database error'),
    debug: (message: unknown) => log.debug({ detail: String(message) }, 'database'),
    deprecate: (method, alternative) => log.warn({ method, alternative }, 'knex deprecation'),
  };
}

export function createKnex(databaseUrl: string, poolMax = 10, log?: Logger): Knex {
  return knexFactory({
    client: 'pg',
    connection: {
      connectionString: databaseUrl,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    },
    acquireConnectionTimeout: ACQUIRE_TIMEOUT_MS,
    pool: { min: 0, max: poolMax },
    ...(log ? { log: knexLog(log) } : {}),
  });
}

/** One of the pool's connections, held outside any query builder (for session-level locks). */
export interface PooledConnection {
  query(sql: string, values: unknown[]): Promise<{ rows: unknown[] }>;
}

interface ConnectionPool {
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<unknown>;
}

// knex types its client as `any`; these are the two methods of it that Passbook relies on.
function isConnectionPool(client: unknown): client is ConnectionPool {
  return (
    typeof client === 'object' &&
    client !== null &&
    'acquireConnection' in client &&
    typeof client.acquireConnection === 'function' &&
    'releaseConnection' in client &&
    typeof client.releaseConnection === 'function'
  );
}

function isPooledConnection(connection: unknown): connection is PooledConnection {
  return (
    typeof connection === 'object' &&
    connection !== null &&
    'query' in connection &&
    typeof connection.query === 'function'
  );
}

/** Runs `work` on a connection of its own from knex's pool, and gives the connection back after. */
export async function withPooledConnection<T>(
  knex: Knex,
  work: (connection: PooledConnection) => Promise<T>,
): Promise<T> {
  const pool: unknown = knex.client;
  if (!isConnectionPool(pool)) throw new Error("knex's client no longer acquires pooled connections");
  const connection = await pool.acquireConnection();
  try {
    if (!isPooledConnection(connection)) throw new Error('a pooled connection that cannot run a query');
    return await work(connection);
  } finally {
    await pool.releaseConnection(connection);
  }
}
