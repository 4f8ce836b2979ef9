import { Gauge, Histogram, type Registry } from 'prom-client';
import type { Knex } from '../db/knex.ts';

/**
 * The connection pool and the queries, as one service's knex sees them. The pool is read when
 * scraped; each query is timed from knex's `query` event to its `query-response` or
 * `query-error`, labelled by outcome only: never the SQL, whose text and bindings could carry ids.
 */

interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  max: number;
}

function isTarnPool(pool: unknown): pool is TarnPool {
  return (
    typeof pool === 'object' &&
    pool !== null &&
    'numUsed' in pool &&
    typeof pool.numUsed === 'function' &&
    'numFree' in pool &&
    typeof pool.numFree === 'function' &&
    'numPendingAcquires' in pool &&
    typeof pool.numPendingAcquires === 'function' &&
    'max' in pool &&
    typeof pool.max === 'number'
  );
}

// knex types its client as `any`; the pool is gone once knex is destroyed.
function poolOf(knex: Knex): TarnPool | undefined {
  const client: unknown = knex.client;
  if (typeof client !== 'object' || client === null || !('pool' in client)) return undefined;
  return isTarnPool(client.pool) ? client.pool : undefined;
}

interface QueryEvent {
  __knexQueryUid?: unknown;
}

/** Queries whose answer never came (a connection lost mid-query) are forgotten past this many. */
const MAX_IN_FLIGHT = 10_000;

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15];

export function countDatabaseUse(knex: Knex, registry: Registry): void {
  const gauge = (name: string, help: string, read: (pool: TarnPool) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const pool = poolOf(knex);
        if (pool) this.set(read(pool));
      },
    });
  gauge('db_pool_connections_used', 'Database connections lent out to a query or transaction.', (pool) =>
    pool.numUsed(),
  );
  gauge('db_pool_connections_free', 'Open database connections idle in the pool.', (pool) => pool.numFree());
  gauge('db_pool_pending_acquires', 'Queries waiting for a database connection.', (pool) =>
    pool.numPendingAcquires(),
  );
  gauge('db_pool_connections_max', 'The most connections the pool opens.', (pool) => pool.max);

  const durations = new Histogram({
    name: 'db_query_duration_seconds',
    help: 'Time from sending a database query to its answer, by outcome (ok, error).',
    labelNames: ['outcome'],
    buckets: BUCKETS,
    registers: [registry],
  });
  const started = new Map<string, number>();
  const finish = (query: QueryEvent, outcome: 'ok' | 'error') => {
    if (typeof query.__knexQueryUid !== 'string') return;
    const at = started.get(query.__knexQueryUid);
    if (at === undefined) return;
    started.delete(query.__knexQueryUid);
    durations.observe({ outcome }, (performance.now() - at) / 1000);
  };
  // Transaction control (BEGIN, COMMIT) carries no uid and gets no answer event: it is not timed.
  knex.on('query', (query: QueryEvent) => {
    if (typeof query.__knexQueryUid !== 'string') return;
    if (started.size >= MAX_IN_FLIGHT) started.clear();
    started.set(query.__knexQueryUid, performance.now());
  });
  knex.on('query-response', (_response: unknown, query: QueryEvent) => finish(query, 'ok'));
  knex.on('query-error', (_error: unknown, query: QueryEvent) => finish(query, 'error'));
}
