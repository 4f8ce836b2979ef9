import { fractionOfCeiling, type Check, type RevocationDelay, type Row } from './report.ts';

/**
 * The issue's targets for one of our 2-core machines with the database on the same machine.
 * Missing one is reported, not fatal: only errors fail a run.
 */

export const THROUGHPUT_TARGETS: Record<string, number> = {
  'sign-in': 60,
  'code-exchange': 800,
  refresh: 800,
  introspection: 3_000,
  userinfo: 2_000,
  discovery: 10_000,
  jwks: 10_000,
};

const P99_MS = 50;
/** A token revoked at one node is refused at another within this, at the 99th percentile. */
const REVOCATION_P99_MS = 50;
const PEAK_RSS_BYTES = 250 * 1024 * 1024;
/** The share of the in-memory ceiling's rate each of these keeps, in the same run. */
const OF_CEILING: Record<string, number> = { refresh: 0.55, introspection: 0.6 };
/** With a million stored rows, refresh and introspection keep at least this share of their empty-table rate. */
const GROWTH_KEEPS = 0.9;
const GROWTH_WORKLOADS = ['refresh', 'introspection'];

const rate = (perSecond: number) => `${Math.round(perSecond).toLocaleString('en-US')}/s`;

function baseline(rows: Row[], workload: string): Row | undefined {
  return rows.find((row) => row.server === 'Passbook' && row.workload === workload && row.filled === 0);
}

function revocationCheck(delay: RevocationDelay): Check {
  return {
    target: `Revocation seen on another node: p99 < ${REVOCATION_P99_MS} ms`,
    measured:
      `${delay.p99Ms.toFixed(1)} ms (p50 ${delay.p50Ms.toFixed(1)} ms, max ${delay.maxMs.toFixed(1)} ms, ` +
      `${delay.tokens.toLocaleString('en-US')} tokens)`,
    met: delay.tokens > 0 && delay.p99Ms < REVOCATION_P99_MS,
  };
}

export function checkTargets(rows: Row[], revocation?: RevocationDelay): Check[] {
  const checks: Check[] = [];
  for (const [workload, target] of Object.entries(THROUGHPUT_TARGETS)) {
    const row = baseline(rows, workload);
    if (!row) continue;
    checks.push({
      target: `${row.label} ≥ ${rate(target)}`,
      measured: rate(row.perSecond),
      met: row.perSecond >= target,
    });
    const p99 = row.unit === 'flow' ? row.requestP99Ms : row.p99Ms;
    checks.push({
      target: `${row.label}: p99 of a request < ${P99_MS} ms`,
      measured: `${p99.toFixed(1)} ms${row.unit === 'flow' ? ` (a whole flow: ${row.p99Ms.toFixed(0)} ms)` : ''}`,
      met: p99 < P99_MS,
    });
  }
  for (const [workload, share] of Object.entries(OF_CEILING)) {
    const row = baseline(rows, workload);
    const fraction = row && fractionOfCeiling(rows, row);
    if (row && fraction !== undefined) {
      checks.push({
        target: `${row.label} ≥ ${Math.round(share * 100)}% of the in-memory ceiling`,
        measured: `${Math.round(fraction * 100)}%`,
        met: fraction >= share,
      });
    }
  }
  for (const workload of GROWTH_WORKLOADS) {
    const empty = baseline(rows, workload);
    const grown = rows
      .filter((row) => row.server === 'Passbook' && row.workload === workload && (row.filled ?? 0) > 0)
      .at(-1);
    if (!empty || !grown || empty.perSecond === 0) continue;
    const kept = grown.perSecond / empty.perSecond;
    checks.push({
      target: `${empty.label} with ${grown.filled?.toLocaleString('en-US')} stored rows within ${Math.round((1 - GROWTH_KEEPS) * 100)}% of the empty table`,
      measured: `${rate(grown.perSecond)} vs ${rate(empty.perSecond)} (${kept >= 1 ? '+' : ''}${Math.round((kept - 1) * 100)}%)`,
      met: kept >= GROWTH_KEEPS,
    });
  }
  const passbook = rows.filter((row) => row.server === 'Passbook');
  if (passbook.length) {
    const peak = Math.max(...passbook.map((row) => row.peakRssBytes));
    checks.push({
      target: 'Passbook peak RSS < 250 MB',
      measured: `${Math.round(peak / 1024 / 1024)} MB`,
      met: peak < PEAK_RSS_BYTES,
    });
  }
  if (revocation) checks.push(revocationCheck(revocation));
  return checks;
}

/** Workloads with any error or non-2xx answer, each with why; the revocation delay's too. */
export function failedRows(rows: Row[], revocation?: RevocationDelay): string[] {
  const failed = rows
    .filter((row) => row.errors > 0)
    .map(
      (row) =>
        `${row.label} (${row.server}${row.filled ? `, ${row.filled} rows filled` : ''}): ${row.errors} errors — ${row.errorSample ?? 'no sample'}`,
    );
  const errors = revocation ? revocation.errors + revocation.background.errors : 0;
  if (revocation && errors > 0) {
    failed.push(
      `Revocation seen on another node: ${errors} errors — ${revocation.errorSample ?? 'in the background load'}`,
    );
  }
  return failed;
}
