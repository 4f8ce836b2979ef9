import autocannon from 'autocannon';
import { newObserved, requestsFor, type LoadSpec, type Observed } from './workloads.ts';

/**
 * The load generator, a process of its own so that it never shares an event loop with the server
 * it measures. The benchmark sends it one workload over IPC; it warms up, runs for the fixed time
 * at the fixed concurrency (or until a stop message), answers with the figures and exits. A
 * workload on several servers runs one autocannon instance per server and adds up their figures.
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

/** Sent after the workload: ends the timed run now (a background load that runs until told). */
export interface StopMessage {
  type: 'stop';
}

function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Latencies in ms as measured (autocannon's own histogram keeps whole milliseconds only). */
interface Measured {
  /** One per URL, as autocannon reports it. */
  results: autocannon.Result[];
  /** Every URL's latencies together, sorted. */
  latencies: Float64Array;
}

/** Every answer's latency, whichever instance it came to. */
class Latencies {
  private values = new Float64Array(1 << 16);
  private count = 0;

  add(ms: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count++] = ms;
  }

  sorted(): Float64Array {
    return this.values.slice(0, this.count).sort();
  }
}

/** The instances running now, so that a stop message can end them early. */
const running = new Set<autocannon.Instance>();
let stopped = false;

function runOne(
  spec: LoadSpec,
  url: string,
  connections: number,
  observed: Observed,
  seconds: number,
  latencies: Latencies,
): Promise<autocannon.Result> {
  return new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections,
        duration: seconds,
        timeout: 10,
        requests: requestsFor(spec, observed),
      },
      (error, finished) => {
        running.delete(instance);
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else resolve(finished);
      },
    );
    running.add(instance);
    if (stopped) instance.stop();
    instance.on('response', (_client, _status, _bytes, ms) => latencies.add(ms));
  });
}

async function run(spec: LoadSpec, observed: Observed, seconds: number): Promise<Measured> {
  const latencies = new Latencies();
  const share = Math.max(1, Math.round(spec.connections / spec.urls.length));
  const results = await Promise.all(
    spec.urls.map((url) => runOne(spec, url, share, observed, seconds, latencies)),
  );
  return { results, latencies: latencies.sorted() };
}

const sum = (results: autocannon.Result[], value: (result: autocannon.Result) => number) =>
  results.reduce((total, result) => total + value(result), 0);

/** The instances ran side by side: their time is the longest of theirs. */
const secondsOf = (results: autocannon.Result[]) => Math.max(...results.map((result) => result.duration));

function flowResult({ results, latencies }: Measured, observed: Observed): Omit<LoadResult, 'cpuSeconds'> {
  const sorted = [...observed.flowMs].sort((a, b) => a - b);
  const seconds = secondsOf(results);
  const connectionErrors = sum(results, (result) => result.errors);
  return {
    completed: sorted.length,
    seconds,
    perSecond: sorted.length / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    requestP99Ms: percentile(latencies, 99),
    errors: observed.failures.count + connectionErrors + sum(results, (result) => result.timeouts),
    errorSample:
      observed.failures.sample ?? (connectionErrors ? `${connectionErrors} connection errors` : undefined),
  };
}

function unexpectedStatuses(results: autocannon.Result[]): string[] {
  const counts = new Map<string, number>();
  for (const result of results) {
    for (const [status, { count }] of Object.entries(result.statusCodeStats ?? {})) {
      if (!status.startsWith('2')) counts.set(status, (counts.get(status) ?? 0) + (count ?? 0));
    }
  }
  return [...counts].map(([status, count]) => `${count}× HTTP ${status}`);
}

function requestResult({ results, latencies }: Measured, observed: Observed): Omit<LoadResult, 'cpuSeconds'> {
  const sample = [observed.failures.sample, ...unexpectedStatuses(results)].filter(Boolean).join('; ');
  const completed = sum(results, (result) => result['2xx']);
  const connectionErrors = sum(results, (result) => result.errors);
  return {
    completed,
    seconds: secondsOf(results),
    perSecond: sum(results, (result) => result['2xx'] / result.duration),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    requestP99Ms: percentile(latencies, 99),
    errors:
      sum(results, (result) => result.non2xx + result.errors + result.timeouts) + observed.failures.count,
    errorSample: sample || (connectionErrors ? `${connectionErrors} connection errors` : undefined),
  };
}

async function measure(spec: LoadSpec): Promise<Omit<LoadResult, 'cpuSeconds'>> {
  // The warm-up draws on the same pools, but its answers and failures are not counted.
  if (spec.warmupSeconds > 0) await run(spec, newObserved(), spec.warmupSeconds);
  const observed = newObserved();
  const measured = await run(spec, observed, spec.durationSeconds);
  return spec.kind === 'sign-in' ? flowResult(measured, observed) : requestResult(measured, observed);
}

function onSpec(spec: LoadSpec): void {
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
}

process.on('message', (message: LoadSpec | StopMessage) => {
  if (!('type' in message)) onSpec(message);
  else {
    stopped = true;
    for (const instance of running) instance.stop();
  }
});
