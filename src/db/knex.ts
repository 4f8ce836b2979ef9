import knexFactory, { type Knex } from 'knex';
import type { Logger } from '../service/kit.ts';
import { DEFAULT_DATABASE_TIMEOUTS, type DatabaseTimeouts } from './timeouts.ts';

export type { Knex };

/** Beyond the statement timeout: how much longer the client waits for an answer at all. */
const CLIENT_GRACE_MS = 1_000;
/**
 * PostgreSQL ends a session left idle inside a transaction this long: a request's transaction
 * (src/db/request-transaction.ts) is never idle for more than milliseconds, so this is a process
 * that is stuck, and its locks must not stay held.
 */
const IDLE_IN_TRANSACTION_MS = 10_000;

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

/** The parts of a pg client the pool's hooks rely on. */
interface DriverConnection {
  query: (...args: unknown[]) => unknown;
  end(): Promise<void>;
  getTransactionStatus(): string | null;
}

function isDriverConnection(connection: unknown): connection is DriverConnection {
  return (
    typeof connection === 'object' &&
    connection !== null &&
    'query' in connection &&
    typeof connection.query === 'function' &&
    'end' in connection &&
    typeof connection.end === 'function' &&
    'getTransactionStatus' in connection &&
    typeof connection.getTransactionStatus === 'function'
  );
}

type QueryCallback = (error: unknown, result?: unknown) => void;

const noop = () => undefined;

/**
 * Connections ended after a client-side query timeout. pg's end() waits for the server to close
 * the socket, which a hanging server never does, so knex never learns the connection is gone:
 * the pool is told here instead.
 */
const endedConnections = new WeakSet<DriverConnection>();

/**
 * Ends a connection that may still be inside a transaction the server has not finished, so that
 * the transaction can only roll back, and the pool never lends the connection out again.
 */
export function retireConnection(connection: unknown): void {
  if (!isDriverConnection(connection)) return;
  endedConnections.add(connection);
  connection.end().catch(() => undefined);
}

/**
 * Two guarantees for every pooled connection, added as it is created:
 *
 * - One query at a time. A request's transaction is one connection, and some of its statements
 *   are sent side by side (the engine revokes a grant's tokens of every kind at once, a page reads
 *   four things at once): they are sent one after another here. pg queues them too, but warns
 *   that pg 9 will refuse to.
 * - A query that timed out on the client ends its connection. The server may still be running it
 *   (a hanging server that resumes, say), inside a transaction; such a connection must never be
 *   lent out again, or the next request's statements would run inside that transaction.
 */
function guardConnection(connection: DriverConnection): void {
  const send = connection.query.bind(connection);
  let idle: Promise<unknown> = Promise.resolve();
  const inTurn = (args: unknown[]): Promise<unknown> => {
    const answered = idle.then(
      () =>
        new Promise((resolve, reject) => {
          send(...args, (error: unknown, result: unknown) => {
            if (error)
              reject(
                error instanceof Error ? error : new Error('the driver failed a query', { cause: error }),
              );
            else resolve(result);
          });
        }),
    );
    idle = answered.then(noop, noop);
    return answered.catch((error: unknown) => {
      if (error instanceof Error && /Query read timeout/.test(error.message)) retireConnection(connection);
      throw error;
    });
  };
  connection.query = (...args: unknown[]) => {
    const first = args[0];
    // A query object of its own (a cursor, a stream) drives the connection itself; none is used.
    if (typeof first === 'object' && first !== null && 'submit' in first) return send(...args);
    const last = args.at(-1);
    if (typeof last !== 'function') return inTurn(args);
    const callback = last as QueryCallback;
    inTurn(args.slice(0, -1)).then(
      (result) => callback(null, result),
      (error: unknown) => callback(error),
    );
    return undefined;
  };
}

/**
 * A connection is lent out only outside any transaction, never one a failed request left open,
 * and never one ended after a timeout.
 */
function isLendable(connection: unknown): boolean {
  if (!isDriverConnection(connection) || endedConnections.has(connection)) return false;
  const status = connection.getTransactionStatus();
  return status !== 'T' && status !== 'E';
}

export function createKnex(
  databaseUrl: string,
  poolMax = 10,
  log?: Logger,
  timeouts: DatabaseTimeouts = DEFAULT_DATABASE_TIMEOUTS,
): Knex {
  return knexFactory({
    client: 'pg',
    connection: {
      connectionString: databaseUrl,
      statement_timeout: timeouts.statementMs,
      // A server that vanished without closing the socket, or hangs, never sends the statement
      // timeout's error: the client stops waiting a moment after it.
      query_timeout: timeouts.statementMs + CLIENT_GRACE_MS,
      idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
      connectionTimeoutMillis: timeouts.connectMs,
    },
    // While the database is away every attempt fails, and the request must answer 503
    // (src/db/unavailable.ts) within seconds rather than queue.
    acquireConnectionTimeout: timeouts.acquireMs,
    pool: {
      min: 0,
      max: poolMax,
      afterCreate(connection: unknown, done: (error: Error | null, connection: unknown) => void) {
        if (!isDriverConnection(connection)) {
          done(new Error('a pg connection without query, end or getTransactionStatus'), connection);
          return;
        }
        guardConnection(connection);
        done(null, connection);
      },
      validate: isLendable,
    },
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
