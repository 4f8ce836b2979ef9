/**
 * What one `npm run bench` measures and for how long. The default gives stable figures;
 * `--quick` runs everything briefly as a smoke check (under three minutes on a 2-core machine).
 */

/**
 * What --only picks. The first seven are one Passbook process (and the ceiling); `two-nodes` runs
 * the token workloads on two Passbook processes on one database; `revocation-delay` times how soon
 * a token revoked at one of them is refused at the other; `bank-api` reads transactions at the
 * bank API, which introspects each request at Passbook.
 */
export const WORKLOAD_IDS = [
  'sign-in',
  'code-exchange',
  'refresh',
  'introspection',
  'userinfo',
  'discovery',
  'jwks',
  'two-nodes',
  'revocation-delay',
  'bank-api',
] as const;

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
  /** Only these workloads (WORKLOAD_IDS); all when empty. */
  only: string[];
  /** Skip the in-memory ceiling's runs (while comparing two builds of Passbook). */
  ceiling: boolean;
  /** Skip the runs on a pre-filled table. */
  growth: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = [
  'usage: npm run bench [-- --quick] [--only id,id,…] [--no-ceiling] [--no-growth]',
  `  ids: ${WORKLOAD_IDS.join(', ')}`,
].join('\n');

function parseOnly(list: string): string[] {
  const ids = list.split(',').filter(Boolean);
  const unknown = ids.filter((id) => !(WORKLOAD_IDS as readonly string[]).includes(id));
  if (unknown.length) throw new UsageError(`unknown workload ${unknown.join(', ')}\n${USAGE}`);
  return ids;
}

export function parseOptions(argv: string[]): BenchOptions {
  let quick = false;
  let only: string[] = [];
  let ceiling = true;
  let growth = true;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--only') only = parseOnly(argv[++i] ?? '');
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
