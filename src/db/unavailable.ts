/**
 * Whether an error means "the database cannot be reached right now" (stopped, restarting, the
 * network cut, the pool unable to get a connection in time) rather than a bug or a bad request.
 * Each place that turns errors into responses asks this, and answers 503 with Retry-After: the
 * request may succeed if repeated, and nothing was written that it would have to undo.
 */

/** Seconds a caller is asked to wait before trying again while the database is away. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/** Node's socket errors for a server that is not there or went away. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);

/**
 * PostgreSQL's SQLSTATEs for a server shutting down or starting up: 57P01 admin_shutdown,
 * 57P02 crash_shutdown, 57P03 cannot_connect_now; class 08 is every connection exception.
 */
const SERVER_CODES = new Set(['57P01', '57P02', '57P03']);

/**
 * What pg says when the socket closes under a query or a connection attempt, when a server that
 * went silent lets a query outlive its client-side timeout (src/db/knex.ts) or a connection
 * attempt its connect timeout ("timeout expired"), or when a query reaches a connection that
 * was ended meanwhile.
 */
const LOST_CONNECTION =
  /Connection terminated|connection timeout|Client has encountered a connection error|Client was closed and is not queryable|Query read timeout|^timeout expired$/i;

function codeOf(error: object): unknown {
  return 'code' in error ? error.code : undefined;
}

export function isDatabaseUnavailable(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 5) return false;
  // knex's pool gave up waiting for a connection (its class is not exported by the ESM entry).
  if (error instanceof Error && error.name === 'KnexTimeoutError') return true;
  const code = codeOf(error);
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || SERVER_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  if (error instanceof Error && LOST_CONNECTION.test(error.message)) return true;
  // Wrapped errors (AggregateError of a multi-address connect, an Error with a cause).
  if (
    error instanceof AggregateError &&
    error.errors.some((inner) => isDatabaseUnavailable(inner, depth + 1))
  )
    return true;
  return 'cause' in error && isDatabaseUnavailable(error.cause, depth + 1);
}
