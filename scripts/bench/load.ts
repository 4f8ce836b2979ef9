import autocannon from 'autocannon';
import { newObserved, requestsFor, type LoadSpec, type Observed } from './workloads.ts';

/**
 * The load generator, a process of its own so that it never shares an event loop with the server
 * it measures. The benchmark sends it one workload over IPC; it warms up, runs for the fixed time
 * at the fixed concurrency, answers with the figures and exits.
 */

export interface LoadResult {
  /** Successful requests, or completed sign-in flows. */
  completed: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** For a flow, the p99 of its single requests; otherwise p99Ms. */
  requestP99Ms: number;
  /** Connection errors, timeouts, non-2xx answers and unexpected bodies: anything but success. */
  errors: number;
  errorSample?: string | undefined;
  /** CPU the load generator itself used, warm-up included, in seconds. */
  cpuSeconds: number;
}

export type LoadMessage = { type: 'result'; result: LoadResult } | { type: 'failed'; message: string };

function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Latencies in ms as measured (autocannon's own histogram keeps whole milliseconds only). */
interface Measured {
  result: autocannon.Result;
  latencies: Float64Array;
}

async function run(spec: LoadSpec, observed: Observed, seconds: number): Promise<Measured> {
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        duration: seconds,
        timeout: 10,
        requests: requestsFor(spec, observed),
      },
      (error, finished) =>
        error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(finished),
    );
    instance.on('response', (_client, _status, _bytes, ms) => {
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[count++] = ms;
    });
  });
  return { result, latencies: latencies.slice(0, count).sort() };
}

function flowResult({ result, latencies }: Measured, observed: Observed): Omit<LoadResult, 'cpuSeconds'> {
  const sorted = [...observed.flowMs].sort((a, b) => a - b);
  return {
    completed: sorted.length,
    seconds: result.duration,
    perSecond: sorted.length / result.duration,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    requestP99Ms: percentile(latencies, 99),
    errors: observed.failures.count + result.errors + result.timeouts,
    errorSample:
      observed.failures.sample ?? (result.errors ? `${result.errors} connection errors` : undefined),
  };
}

function requestResult({ result, latencies }: Measured, observed: Observed): Omit<LoadResult, 'cpuSeconds'> {
  const statuses = Object.entries(result.statusCodeStats ?? {})
    .filter(([status]) => !status.startsWith('2'))
    .map(([status, { count }]) => `${count ?? 0}× HTTP ${status}`);
  const sample = [observed.failures.sample, ...statuses].filter(Boolean).join('; ');
  return {
    completed: result['2xx'],
    seconds: result.duration,
    perSecond: result['2xx'] / result.duration,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    requestP99Ms: percentile(latencies, 99),
    errors: result.non2xx + result.errors + result.timeouts + observed.failures.count,
    errorSample: sample || (result.errors ? `${result.errors} connection errors` : undefined),
  };
}

async function measure(spec: LoadSpec): Promise<Omit<LoadResult, 'cpuSeconds'>> {
  // The warm-up draws on the same pools, but its answers and failures are not counted.
  if (spec.warmupSeconds > 0) await run(spec, newObserved(), spec.warmupSeconds);
  const observed = newObserved();
  const measured = await run(spec, observed, spec.durationSeconds);
  return spec.kind === 'sign-in' ? flowResult(measured, observed) : requestResult(measured, observed);
}

process.once('message', (spec: LoadSpec) => {
  measure(spec).then(
    (measured) => {
      const { user, system } = process.cpuUsage();
      const result: LoadResult = { ...measured, cpuSeconds: (user + system) / 1e6 };
      process.send?.({ type: 'result', result } satisfies LoadMessage, () => process.exit(0));
    },
    (error: unknown) =>
      process.send?.({ type: 'failed', message: (error as Error).message } satisfies LoadMessage, () =>
        process.exit(1),
      ),
  );
});
