/**
 * What one `npm run bench` measures and for how long. The default gives stable figures;
 * `--quick` runs everything briefly as a smoke check (under two minutes on a 2-core machine).
 */

export interface BenchOptions {
  quick: boolean;
  /** Seconds of load before each timed run, not measured. */
  warmupSeconds: number;
  /** Seconds each timed run lasts. */
  durationSeconds: number;
  /** Concurrent connections of the load generator, for every single-request workload. */
  connections: number;
  /** Concurrent customers signing in: each costs an argon2id hash on the libuv pool. */
  signInConnections: number;
  /** Rows of oidc_models the growth runs pre-fill, smallest first. */
  fills: number[];
  /** Only these workloads (ids from workloads.ts); all when empty. */
  only: string[];
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = 'usage: npm run bench [-- --quick] [--only id,id,…]';

export function parseOptions(argv: string[]): BenchOptions {
  let quick = false;
  let only: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--only') only = (argv[++i] ?? '').split(',').filter(Boolean);
    else throw new UsageError(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  return {
    quick,
    warmupSeconds: quick ? 1 : 5,
    durationSeconds: quick ? 3 : 15,
    connections: 10,
    signInConnections: 8,
    fills: [10_000, 1_000_000],
    only,
  };
}
