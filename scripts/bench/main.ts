import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Provider from 'oidc-provider';
import { createBenchDatabase, type BenchDatabase } from './database.ts';
import { countModels, emptyModels, fillModels } from './fill.ts';
import {
  CODE_VERIFIER,
  REDIRECT_URI,
  inParallel,
  mintAccessToken,
  mintCodes,
  mintRefreshToken,
} from './mint.ts';
import { parseOptions, UsageError, type BenchOptions } from './options.ts';
import {
  freePort,
  machineCpuSeconds,
  runLoad,
  startCeiling,
  startPassbook,
  type CeilingProcess,
  type ServerProcess,
} from './processes.ts';
import { benchProvider } from './provider.ts';
import {
  checksText,
  markdownReport,
  textTable,
  type Machine,
  type Report,
  type Row,
  type ServerName,
} from './report.ts';
import { APP_SCOPE, seedBench, type BenchSeed } from './seed.ts';
import { checkTargets, failedRows } from './targets.ts';
import type { LoadSpec } from './workloads.ts';

/**
 * `npm run bench`: Passbook in production mode and the in-memory ceiling, each in its own
 * process on 127.0.0.1, driven one workload at a time by autocannon from a third process, on a
 * database created for the run and dropped at its end, even on failure.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const ARTIFACTS = path.join(ROOT, 'artifacts/bench');

/** Single-use codes minted per second of run: above anything two cores can redeem. */
const CODES_PER_SECOND = 2_500;
/** Codes per grant: one customer's consent, redeemed for several sign-ins. */
const CODES_PER_GRANT = 10;
/** Refresh tokens in circulation: each answer's rotated token goes back into the pool. */
const REFRESH_POOL = 64;

const LABELS: Record<string, string> = {
  'sign-in': 'Full sign-in (argon2id, consent, code, token)',
  'code-exchange': 'Authorization-code exchange',
  refresh: 'Refresh grant (rotation)',
  introspection: 'Introspection (opaque access token)',
  userinfo: 'UserInfo',
  discovery: 'Discovery',
  jwks: 'JWKS',
};
const ORDER = Object.keys(LABELS);

interface Run {
  options: BenchOptions;
  database: BenchDatabase;
  passbook: ServerProcess;
  ceiling: CeilingProcess;
  twin: Provider;
  seed: BenchSeed;
  rows: Row[];
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function wanted(options: BenchOptions, workload: string): boolean {
  return options.only.length === 0 || options.only.includes(workload);
}

/** Samples the server's resident memory while `work` runs; returns the work's result and the peak. */
async function withPeakRss<T>(server: ServerProcess, work: () => Promise<T>): Promise<[T, number]> {
  let peak = await server.rss();
  const timer = setInterval(() => {
    server.rss().then(
      (rss) => {
        peak = Math.max(peak, rss);
      },
      () => {},
    );
  }, 100);
  try {
    const result = await work();
    return [result, Math.max(peak, await server.rss())];
  } finally {
    clearInterval(timer);
  }
}

type Workload = Pick<LoadSpec, 'connections'> & Record<string, unknown>;

async function measure(
  run: Run,
  server: ServerProcess,
  workload: string,
  spec: Omit<LoadSpec, 'url' | 'warmupSeconds' | 'durationSeconds' | 'connections'> & Partial<Workload>,
  filled: number | null,
): Promise<void> {
  const storedRows = server.name === 'Passbook' ? await countModels(run.database.knex) : null;
  const full = {
    url: server.url,
    warmupSeconds: run.options.warmupSeconds,
    durationSeconds: run.options.durationSeconds,
    connections: run.options.connections,
    ...spec,
  } as LoadSpec;
  const cpuBefore = await server.cpuSeconds();
  const machineBefore = await machineCpuSeconds();
  const started = performance.now();
  const [result, peakRssBytes] = await withPeakRss(server, () => runLoad(full));
  const seconds = (performance.now() - started) / 1000;
  const machineAfter = await machineCpuSeconds();
  const serverCores = ((await server.cpuSeconds()) - cpuBefore) / seconds;
  const machineCores = (machineAfter.busy - machineBefore.busy) / seconds;
  if (!server.alive()) throw new Error(`${server.name} died during ${workload}; see ${server.logFile}`);
  const row: Row = {
    workload,
    label: LABELS[workload] ?? workload,
    server: server.name as ServerName,
    storedRows,
    filled,
    connections: full.connections,
    perSecond: result.perSecond,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    requestP99Ms: result.requestP99Ms,
    errors: result.errors,
    errorSample: result.errorSample,
    peakRssBytes,
    serverCores,
    loadCores: result.cpuSeconds / seconds,
    machineCores,
    unit: workload === 'sign-in' ? 'flow' : 'request',
  };
  run.rows.push(row);
  say(
    `  ${row.label} on ${row.server}${filled ? ` (+${filled.toLocaleString('en-US')} rows)` : ''}: ` +
      `${Math.round(row.perSecond)}/s, p50 ${row.p50Ms.toFixed(1)} ms, p99 ${row.p99Ms.toFixed(1)} ms, ` +
      `${row.errors} errors, peak RSS ${Math.round(peakRssBytes / 2 ** 20)} MB, ` +
      `CPU: server ${serverCores.toFixed(2)}, load ${row.loadCores.toFixed(2)}, machine ${machineCores.toFixed(2)} cores` +
      (row.errors ? `\n    ${row.errorSample ?? ''}` : ''),
  );
}

function tokenTarget(seed: BenchSeed) {
  return { accountId: seed.tokenCustomer.id, clientId: seed.app.clientId, scope: APP_SCOPE };
}

async function readOnlyWorkloads(run: Run, server: ServerProcess): Promise<void> {
  if (wanted(run.options, 'discovery'))
    await measure(
      run,
      server,
      'discovery',
      { kind: 'get', path: '/.well-known/openid-configuration' },
      server.name === 'Passbook' ? 0 : null,
    );
  if (wanted(run.options, 'jwks'))
    await measure(run, server, 'jwks', { kind: 'get', path: '/jwks' }, server.name === 'Passbook' ? 0 : null);
}

async function passbookWorkloads(run: Run): Promise<void> {
  const { twin, seed, options, passbook } = run;
  await readOnlyWorkloads(run, passbook);
  if (wanted(options, 'userinfo')) {
    const token = await mintAccessToken(twin, tokenTarget(seed));
    await measure(run, passbook, 'userinfo', { kind: 'get', path: '/me', bearer: token }, 0);
  }
  if (wanted(options, 'code-exchange')) {
    const count = Math.ceil((options.warmupSeconds + options.durationSeconds) * CODES_PER_SECOND);
    const batches = await inParallel(Math.ceil(count / CODES_PER_GRANT), 16, () =>
      mintCodes(twin, tokenTarget(seed), CODES_PER_GRANT, CODES_PER_GRANT),
    );
    say(`  (minted ${count.toLocaleString('en-US')} authorization codes)`);
    await measure(
      run,
      passbook,
      'code-exchange',
      {
        kind: 'code',
        client: seed.app,
        codes: batches.flat(),
        verifier: CODE_VERIFIER,
        redirectUri: REDIRECT_URI,
      },
      0,
    );
  }
  if (wanted(options, 'sign-in')) {
    await measure(
      run,
      passbook,
      'sign-in',
      {
        kind: 'sign-in',
        client: seed.app,
        customers: seed.signInCustomers,
        redirectUri: REDIRECT_URI,
        scope: APP_SCOPE,
        connections: options.signInConnections,
      },
      0,
    );
  }
}

/** Introspection and refresh, on the token table as it is (emptied, then filled to `filled` rows). */
async function tokenWorkloads(
  run: Run,
  server: ServerProcess,
  filled: number | null,
  mintAccess: () => Promise<string>,
  mintRefresh: (count: number) => Promise<string[]>,
): Promise<void> {
  if (wanted(run.options, 'introspection')) {
    const token = await mintAccess();
    await measure(
      run,
      server,
      'introspection',
      { kind: 'introspect', client: run.seed.resourceServer, token },
      filled,
    );
  }
  if (wanted(run.options, 'refresh')) {
    const tokens = await mintRefresh(REFRESH_POOL);
    await measure(run, server, 'refresh', { kind: 'refresh', client: run.seed.app, tokens }, filled);
  }
}

async function growthWorkloads(run: Run): Promise<void> {
  if (!wanted(run.options, 'introspection') && !wanted(run.options, 'refresh')) return;
  const { knex } = run.database;
  const target = tokenTarget(run.seed);
  let filled = 0;
  for (const level of [0, ...(run.options.growth ? run.options.fills : [])]) {
    await emptyModels(knex);
    if (level > 0) {
      const started = Date.now();
      await fillModels(knex, 1, level);
      say(
        `  (filled oidc_models with ${level.toLocaleString('en-US')} rows in ${((Date.now() - started) / 1000).toFixed(1)} s)`,
      );
    }
    filled = level;
    await tokenWorkloads(
      run,
      run.passbook,
      filled,
      () => mintAccessToken(run.twin, target),
      (count) => inParallel(count, 8, () => mintRefreshToken(run.twin, target)),
    );
  }
}

async function ceilingWorkloads(run: Run): Promise<void> {
  const { ceiling } = run;
  const target = tokenTarget(run.seed);
  await readOnlyWorkloads(run, ceiling);
  await tokenWorkloads(
    run,
    ceiling,
    null,
    async () => (await ceiling.mint({ type: 'mint-access-token', target }))[0] ?? '',
    (count) => ceiling.mint({ type: 'mint-refresh-tokens', target, count }),
  );
}

async function describeMachine(database: BenchDatabase): Promise<Machine> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return {
    cpus: os.availableParallelism(),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown CPU',
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    postgres: database.version,
    database: database.server,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
  };
}

function serverEnv(database: BenchDatabase, port: number): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    PORT: String(port),
    ISSUER: `http://127.0.0.1:${port}`,
    DATABASE_URL: database.url,
    COOKIE_KEYS: randomBytes(32).toString('base64url'),
    DATA_ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
    // The growth runs must keep the rows they stored; a purge midway would also cost a timed run.
    PURGE_INTERVAL: '0',
    // Codes are minted before their run; 60 s would not cover minting, warm-up and run together.
    AUTHORIZATION_CODE_TTL: '600',
  };
}

function sortRows(rows: Row[]): Row[] {
  const rank = (row: Row) =>
    ORDER.indexOf(row.workload) * 1e9 + (row.server === 'Passbook' ? 0 : 1) * 1e8 + (row.filled ?? 0);
  return [...rows].sort((a, b) => rank(a) - rank(b));
}

async function logProblems(file: string): Promise<number> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => /"level":(50|60)/.test(line)).length;
}

async function writeReport(report: Report): Promise<string[]> {
  const stamp = report.finishedAt.replace(/[:.]/g, '-');
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const markdown = markdownReport(report);
  const files = [`bench-${stamp}.json`, 'latest.json', `bench-${stamp}.md`, 'latest.md'];
  await Promise.all(
    files.map((file) => writeFile(path.join(ARTIFACTS, file), file.endsWith('.json') ? json : markdown)),
  );
  return files
    .slice(0, 1)
    .concat(files[2] ?? [])
    .map((file) => path.join('artifacts/bench', file));
}

async function bench(options: BenchOptions, cleanups: (() => Promise<void>)[]): Promise<number> {
  const startedAt = new Date().toISOString();
  await mkdir(ARTIFACTS, { recursive: true });
  const database = await createBenchDatabase();
  cleanups.push(() => database.drop());
  say(`database: ${database.version}, ${database.server}`);

  const passbookEnv = serverEnv(database, await freePort());
  await writeFile(path.join(ARTIFACTS, 'passbook.log'), '');
  // BENCH_CPU_PROF=dir writes Passbook's CPU profile there when it stops (node --cpu-prof);
  // BENCH_NODE_FLAGS tries other Node.js flags on Passbook (say so when reporting such a run).
  const profile = process.env.BENCH_CPU_PROF;
  const nodeFlags = [
    ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profile)}`] : []),
    ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
  ];
  const passbook = await startPassbook(passbookEnv, path.join(ARTIFACTS, 'passbook.log'), nodeFlags);
  cleanups.push(() => passbook.stop());
  const twin = await benchProvider(passbookEnv, database.knex, 'postgres');
  const seed = await seedBench(database.knex, twin, options.signInConnections * 2);

  const ceilingPort = await freePort();
  await writeFile(path.join(ARTIFACTS, 'ceiling.log'), '');
  const ceiling = await startCeiling(
    {
      ...passbookEnv,
      PORT: String(ceilingPort),
      ISSUER: `http://127.0.0.1:${ceilingPort}`,
      BENCH_CLIENT_IDS: [seed.app.clientId, seed.resourceServer.clientId].join(','),
    },
    path.join(ARTIFACTS, 'ceiling.log'),
  );
  cleanups.push(() => ceiling.stop());
  say(`Passbook (pid ${passbook.pid}) and the in-memory ceiling (pid ${ceiling.pid}) are up; measuring…`);

  const run: Run = { options, database, passbook, ceiling, twin, seed, rows: [] };
  await passbookWorkloads(run);
  if (options.ceiling) await ceilingWorkloads(run);
  await growthWorkloads(run);

  const rows = sortRows(run.rows);
  const logErrors = await logProblems(passbook.logFile);
  const report: Report = {
    command: ['npm run bench --', ...process.argv.slice(2)].join(' ').replace(/ --$/, ''),
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: await describeMachine(database),
    settings: {
      warmupSeconds: options.warmupSeconds,
      durationSeconds: options.durationSeconds,
      connections: options.connections,
      signInConnections: options.signInConnections,
      refreshTokenPool: REFRESH_POOL,
      passbookProcesses: 1,
      passbookNodeFlags: nodeFlags.join(' ') || 'none',
      passbookLogErrors: logErrors,
    },
    rows,
    checks: checkTargets(rows),
    failed: failedRows(rows),
  };
  const written = await writeReport(report);
  say(`\n${textTable(rows)}\n\n${checksText(report.checks)}\n`);
  if (logErrors) say(`Passbook logged ${logErrors} errors: see ${passbook.logFile}`);
  say(`written: ${written.join(', ')}`);
  if (report.failed.length) {
    say(
      `\nFAILED: ${report.failed.length} workload(s) had errors:\n${report.failed.map((line) => `  ${line}`).join('\n')}`,
    );
    return 1;
  }
  return 0;
}

async function main(): Promise<void> {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  const cleanups: (() => Promise<void>)[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const cleanup of cleanups.reverse()) {
        await cleanup().catch((error: unknown) =>
          process.stderr.write(`bench: cleanup: ${(error as Error).message}\n`),
        );
      }
    })());
  const abort = (why: string, code: number) => {
    process.stderr.write(`bench: ${why}; stopping and dropping the database\n`);
    void cleanUp().finally(() => process.exit(code));
  };
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));
  // Bounded: even a stuck run stops by itself.
  const limitMinutes = options.quick ? 5 : 30;
  setTimeout(() => abort(`still running after ${limitMinutes} minutes`, 1), limitMinutes * 60_000).unref();

  let code = 1;
  try {
    code = await bench(options, cleanups);
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  } finally {
    await cleanUp();
  }
  process.exit(code);
}

await main();
