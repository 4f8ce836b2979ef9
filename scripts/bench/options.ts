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
  /** Only these workloads (ids in main.ts); all when empty. */
  only: string[];
  /** Skip the in-memory ceiling's runs (while comparing two builds of Passbook). */
  ceiling: boolean;
  /** Skip the runs on a pre-filled table. */
  growth: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = 'usage: npm run bench [-- --quick] [--only id,id,…] [--no-ceiling] [--no-growth]';

export function parseOptions(argv: string[]): BenchOptions {
  let quick = false;
  let only: string[] = [];
  let ceiling = true;
  let growth = true;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--only') only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (arg === '--no-ceiling') ceiling = false;
    else if (arg === '--no-growth') growth = false;
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
    ceiling,
    growth,
  };
}
