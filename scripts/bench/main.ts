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
import { bankApiUrl, checkTransactions, startBenchBankApi, type BenchBankApi } from './bank-api.ts';
import { parseOptions, UsageError, type BenchOptions } from './options.ts';
import {
  fillCompileCache,
  machineCpuSeconds,
  runLoad,
  startCeiling,
  productionEnv,
  startPassbook,
  type CeilingProcess,
  type ServerProcess,
} from './processes.ts';
import { benchProvider } from './provider.ts';
import { freePort } from '../ports.ts';
import { startScript } from '../start-script.ts';
import {
  checksText,
  markdownReport,
  notesText,
  revocationText,
  textTable,
  type Machine,
  type Report,
  type RevocationDelay,
  type Row,
  type ServerName,
} from './report.ts';
import { measureRevocationDelay } from './revocation.ts';
import { measureHashCpuMs, signInBudget, signInBudgetText, type SignInBudget } from './sign-in-budget.ts';
import { APP_SCOPE, seedBench, type BenchSeed } from './seed.ts';
import { checkTargets, failedRows, THROUGHPUT_TARGETS } from './targets.ts';
import type { LoadSpec } from './workloads.ts';

/**
 * `npm run bench`: Passbook in production mode and the in-memory ceiling, each in its own
 * process on 127.0.0.1, driven one workload at a time by autocannon from a third process, on a
 * database created for the run and dropped at its end, even on failure. Then, for a while, a
 * second Passbook process runs beside the first on the same database, for the token workloads
 * split over both ("Passbook ×2") and for the revocation delay between them; last, the bank API,
 * in a process of its own, serves transactions, introspecting every request at the first Passbook.
 *
 *   npm run bench [-- --quick] [--only id,id,…] [--no-ceiling] [--no-growth]   (ids: options.ts)
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
  'bank-api': 'Bank API: 50 transactions (introspected at Passbook)',
  discovery: 'Discovery',
  jwks: 'JWKS',
};
const ORDER = Object.keys(LABELS);
const SERVER_ORDER: ServerName[] = ['Passbook', 'Passbook ×2', 'bank API → Passbook', 'in-memory ceiling'];
/** What the bank-API workload asks for: a page of the customer's transactions over the shared accounts. */
const TRANSACTIONS_PATH = '/transactions?limit=50';

/** What a workload is measured on: where the load goes, and whose figures count. */
interface Target {
  name: ServerName;
  /** The load is split evenly over these. */
  urls: string[];
  processes: ServerProcess[];
}

function alone(server: ServerProcess, name: ServerName): Target {
  return { name, urls: [server.url], processes: [server] };
}

interface Run {
  options: BenchOptions;
  database: BenchDatabase;
  passbook: ServerProcess;
  /** The first Passbook's environment, which a second one shares. */
  passbookEnv: Record<string, string>;
  nodeFlags: string[];
  ceiling: CeilingProcess;
  twin: Provider;
  seed: BenchSeed;
  /** Up from the start when sign-in or bank-api runs: consent screens list the customer's accounts from it. */
  bankApi: BenchBankApi | undefined;
  rows: Row[];
  revocation?: RevocationDelay;
  signInBudget?: SignInBudget;
  /** Every server's log, for the errors they logged. */
  logFiles: string[];
  /** Run at the end, even on failure: servers started midway stop there too. */
  cleanups: (() => Promise<void>)[];
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function wanted(options: BenchOptions, workload: string): boolean {
  return options.only.length === 0 || options.only.includes(workload);
}

/** Samples each server's resident memory while `work` runs; returns the work's result and each one's peak. */
async function withPeakRss<T>(servers: ServerProcess[], work: () => Promise<T>): Promise<[T, number[]]> {
  const peaks = await Promise.all(servers.map((server) => server.rss()));
  const sample = () =>
    Promise.all(
      servers.map((server, i) =>
        server.rss().then(
          (rss) => {
            peaks[i] = Math.max(peaks[i] ?? 0, rss);
          },
          () => {},
        ),
      ),
    );
  const timer = setInterval(() => void sample(), 100);
  try {
    const result = await work();
    await sample();
    return [result, peaks];
  } finally {
    clearInterval(timer);
  }
}

const total = (values: number[]) => values.reduce((sum, value) => sum + value, 0);
const cpuOf = (servers: ServerProcess[]) => Promise.all(servers.map((server) => server.cpuSeconds()));

type Workload = Pick<LoadSpec, 'connections'> & Record<string, unknown>;

async function measure(
  run: Run,
  target: Target,
  workload: string,
  spec: Omit<LoadSpec, 'urls' | 'warmupSeconds' | 'durationSeconds' | 'connections'> & Partial<Workload>,
  filled: number | null,
): Promise<Row> {
  const servers = target.processes;
  const storedRows = target.name === 'in-memory ceiling' ? null : await countModels(run.database.knex);
  const full = {
    urls: target.urls,
    warmupSeconds: run.options.warmupSeconds,
    durationSeconds: run.options.durationSeconds,
    connections: run.options.connections,
    ...spec,
  } as LoadSpec;
  const cpuBefore = await cpuOf(servers);
  const machineBefore = await machineCpuSeconds();
  const started = performance.now();
  const [result, peaks] = await withPeakRss(servers, () => runLoad(full));
  const seconds = (performance.now() - started) / 1000;
  const machineAfter = await machineCpuSeconds();
  const cores = (await cpuOf(servers)).map((after, i) => (after - (cpuBefore[i] ?? 0)) / seconds);
  const machineCores = (machineAfter.busy - machineBefore.busy) / seconds;
  const dead = servers.find((server) => !server.alive());
  if (dead) throw new Error(`${dead.name} died during ${workload}; see ${dead.logFile}`);
  const peakRssBytes = total(peaks);
  const serverCores = total(cores);
  const row: Row = {
    workload,
    label: LABELS[workload] ?? workload,
    server: target.name,
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
    processes:
      servers.length > 1
        ? servers.map((server, i) => ({
            name: server.name,
            peakRssBytes: peaks[i] ?? 0,
            cores: cores[i] ?? 0,
          }))
        : undefined,
  };
  run.rows.push(row);
  say(
    `  ${row.label} on ${row.server}${filled ? ` (+${filled.toLocaleString('en-US')} rows)` : ''}: ` +
      `${Math.round(row.perSecond)}/s, p50 ${row.p50Ms.toFixed(1)} ms, p99 ${row.p99Ms.toFixed(1)} ms, ` +
      `${row.errors} errors, peak RSS ${Math.round(peakRssBytes / 2 ** 20)} MB, ` +
      `CPU: server${servers.length > 1 ? `s ${cores.map((value) => value.toFixed(2)).join(' + ')} =` : ''} ${serverCores.toFixed(2)}, load ${row.loadCores.toFixed(2)}, machine ${machineCores.toFixed(2)} cores` +
      (row.errors ? `\n    ${row.errorSample ?? ''}` : ''),
  );
  return row;
}

function tokenTarget(seed: BenchSeed) {
  return { accountId: seed.tokenCustomer.id, clientId: seed.app.clientId, scope: APP_SCOPE };
}

async function readOnlyWorkloads(run: Run, target: Target): Promise<void> {
  const filled = target.name === 'Passbook' ? 0 : null;
  if (wanted(run.options, 'discovery'))
    await measure(
      run,
      target,
      'discovery',
      { kind: 'get', path: '/.well-known/openid-configuration' },
      filled,
    );
  if (wanted(run.options, 'jwks')) await measure(run, target, 'jwks', { kind: 'get', path: '/jwks' }, filled);
}

async function userinfoWorkload(run: Run, target: Target): Promise<void> {
  const token = await mintAccessToken(run.twin, tokenTarget(run.seed));
  await measure(run, target, 'userinfo', { kind: 'get', path: '/me', bearer: token }, 0);
}

async function codeExchangeWorkload(run: Run, target: Target): Promise<void> {
  const { options, twin, seed } = run;
  const count = Math.ceil((options.warmupSeconds + options.durationSeconds) * CODES_PER_SECOND);
  const batches = await inParallel(Math.ceil(count / CODES_PER_GRANT), 16, () =>
    mintCodes(twin, tokenTarget(seed), CODES_PER_GRANT, CODES_PER_GRANT),
  );
  say(`  (minted ${count.toLocaleString('en-US')} authorization codes)`);
  await measure(
    run,
    target,
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

async function passbookWorkloads(run: Run): Promise<void> {
  const { options } = run;
  const passbook = alone(run.passbook, 'Passbook');
  await readOnlyWorkloads(run, passbook);
  if (wanted(options, 'userinfo')) await userinfoWorkload(run, passbook);
  if (wanted(options, 'code-exchange')) await codeExchangeWorkload(run, passbook);
  if (wanted(options, 'sign-in')) await signInWorkload(run, passbook);
}

/** Full sign-in flows, and where their CPU goes against the sign-in target (sign-in-budget.ts). */
async function signInWorkload(run: Run, passbook: Target): Promise<void> {
  const { seed, options } = run;
  // Timed while the servers are idle, so that the hash has a core to itself.
  const hashMs = await measureHashCpuMs();
  const row = await measure(
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
  const target = THROUGHPUT_TARGETS['sign-in'] ?? 60;
  run.signInBudget = signInBudget(row, hashMs, os.availableParallelism(), target);
  say(`  ${signInBudgetText(run.signInBudget).replace(/\n/g, '\n  ')}`);
}

/** Introspection and refresh, on the token table as it is (emptied, then filled to `filled` rows). */
async function tokenWorkloads(
  run: Run,
  target: Target,
  filled: number | null,
  mintAccess: () => Promise<string>,
  mintRefresh: (count: number) => Promise<string[]>,
  wants: (workload: string) => boolean = (workload) => wanted(run.options, workload),
): Promise<void> {
  if (wants('introspection')) {
    const token = await mintAccess();
    await measure(
      run,
      target,
      'introspection',
      { kind: 'introspect', client: run.seed.resourceServer, token },
      filled,
    );
  }
  if (wants('refresh')) {
    const tokens = await mintRefresh(REFRESH_POOL);
    await measure(run, target, 'refresh', { kind: 'refresh', client: run.seed.app, tokens }, filled);
  }
}

function mintOnTwin(run: Run): [() => Promise<string>, (count: number) => Promise<string[]>] {
  const target = tokenTarget(run.seed);
  return [
    () => mintAccessToken(run.twin, target),
    (count) => inParallel(count, 8, () => mintRefreshToken(run.twin, target)),
  ];
}

async function growthWorkloads(run: Run): Promise<void> {
  if (!wanted(run.options, 'introspection') && !wanted(run.options, 'refresh')) return;
  const { knex } = run.database;
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
    await tokenWorkloads(run, alone(run.passbook, 'Passbook'), filled, ...mintOnTwin(run));
  }
}

/**
 * The token workloads with the load split evenly over both processes, on the token table as one
 * process met it: nearly empty for UserInfo and the code exchange, emptied for the other two.
 */
async function twoNodeWorkloads(run: Run, second: ServerProcess): Promise<void> {
  const pair: Target = {
    name: 'Passbook ×2',
    urls: [run.passbook.url, second.url],
    processes: [run.passbook, second],
  };
  await emptyModels(run.database.knex);
  await userinfoWorkload(run, pair);
  await codeExchangeWorkload(run, pair);
  await emptyModels(run.database.knex);
  await tokenWorkloads(run, pair, 0, ...mintOnTwin(run), () => true);
}

async function revocationDelay(run: Run, second: ServerProcess): Promise<RevocationDelay> {
  const started = performance.now();
  const delay = await measureRevocationDelay({
    twin: run.twin,
    target: tokenTarget(run.seed),
    app: run.seed.app,
    resourceServer: run.seed.resourceServer,
    a: run.passbook.url,
    b: second.url,
    connections: run.options.connections,
  });
  say(`  ${revocationText(delay).replace(/\n/g, '\n  ')}`);
  say(`  (the revocation delay took ${((performance.now() - started) / 1000).toFixed(1)} s)`);
  return delay;
}

/** A second Passbook process on the same database, up only for the sections that need it. */
async function withSecondPassbook(run: Run): Promise<void> {
  const twoNodes = wanted(run.options, 'two-nodes');
  const revocation = wanted(run.options, 'revocation-delay');
  if (!twoNodes && !revocation) return;
  const logFile = path.join(ARTIFACTS, 'passbook-b.log');
  await writeFile(logFile, '');
  // The same environment (issuer, keys, database) on a port of its own; its metrics listener would
  // take the first one's default port.
  const env = { ...run.passbookEnv, PORT: String(await freePort()), METRICS_PORT: 'off' };
  const second = await startPassbook(env, logFile, run.nodeFlags, 'Passbook B');
  run.cleanups.push(() => second.stop());
  run.logFiles.push(logFile);
  try {
    say(`a second Passbook (pid ${second.pid}) is up on the same database; measuring both…`);
    if (twoNodes) await twoNodeWorkloads(run, second);
    if (revocation) run.revocation = await revocationDelay(run, second);
  } finally {
    await second.stop();
  }
}

/**
 * The bank API, started before any workload on the port Passbook was told (BANK_API_URL): the
 * sign-in's consent screens ask it for the customer's accounts, as in production, and the
 * bank-api workload reads transactions at it. It stays idle in between.
 */
async function startBankApiIfWanted(
  options: BenchOptions,
  database: BenchDatabase,
  issuer: string,
  seed: BenchSeed,
  port: number,
): Promise<BenchBankApi | undefined> {
  if (!wanted(options, 'sign-in') && !wanted(options, 'bank-api')) return undefined;
  return startBenchBankApi({
    database,
    issuer,
    resourceServer: seed.resourceServer,
    port,
    customerId: seed.tokenCustomer.id,
    otherCustomerIds: seed.signInCustomers.map((customer) => customer.id),
    logDir: ARTIFACTS,
  });
}

async function bankApiWorkload(run: Run): Promise<void> {
  const { bankApi } = run;
  if (!wanted(run.options, 'bank-api') || !bankApi) return;
  say(`measuring the bank API (pid ${bankApi.server.pid}), introspecting at Passbook…`);
  const token = await mintAccessToken(run.twin, { ...tokenTarget(run.seed), ibans: bankApi.ibans });
  await checkTransactions(bankApi, TRANSACTIONS_PATH, token);
  await measure(
    run,
    { name: 'bank API → Passbook', urls: [bankApi.server.url], processes: [bankApi.server, run.passbook] },
    'bank-api',
    { kind: 'get', path: TRANSACTIONS_PATH, bearer: token },
    0,
  );
  // autocannon hangs up on the requests still queued for the bank API's pool; let them finish
  // before the shutdown takes the pool away under them (and logs each as an error).
  await new Promise((resolve) => setTimeout(resolve, 1_000));
}

async function ceilingWorkloads(run: Run): Promise<void> {
  const { ceiling } = run;
  const target = tokenTarget(run.seed);
  await readOnlyWorkloads(run, alone(ceiling, 'in-memory ceiling'));
  await tokenWorkloads(
    run,
    alone(ceiling, 'in-memory ceiling'),
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

function serverEnv(database: BenchDatabase, port: number, bankApiPort: number): Record<string, string> {
  return {
    ...productionEnv(port),
    ISSUER: `http://127.0.0.1:${port}`,
    BANK_API_URL: bankApiUrl(bankApiPort),
    DATABASE_URL: database.url,
    COOKIE_KEYS: randomBytes(32).toString('base64url'),
    DATA_ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
    // The growth runs must keep the rows they stored; a purge midway would also cost a timed run.
    PURGE_INTERVAL: '0',
    // Codes are minted before their run; 60 s would not cover minting, warm-up and run together.
    AUTHORIZATION_CODE_TTL: '600',
    // Metrics are counted as in production, on a port of the system's choosing: a Passbook already
    // running on this machine holds the default one.
    METRICS_PORT: '0',
  };
}

function sortRows(rows: Row[]): Row[] {
  const rank = (row: Row) =>
    ORDER.indexOf(row.workload) * 1e9 + SERVER_ORDER.indexOf(row.server) * 1e8 + (row.filled ?? 0);
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

  const start = await startScript();
  await fillCompileCache(start.env);
  const bankApiPort = await freePort();
  const passbookEnv = { ...start.env, ...serverEnv(database, await freePort(), bankApiPort) };
  await writeFile(path.join(ARTIFACTS, 'passbook.log'), '');
  // Passbook starts with `npm start`'s variables and flags; BENCH_CPU_PROF=dir writes its CPU
  // profile there when it stops (node --cpu-prof); BENCH_NODE_FLAGS tries other Node.js flags on
  // it, after those (say so when reporting such a run).
  const profile = process.env.BENCH_CPU_PROF;
  const nodeFlags = [
    ...start.nodeFlags,
    ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profile)}`] : []),
    ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
  ];
  const passbook = await startPassbook(passbookEnv, path.join(ARTIFACTS, 'passbook.log'), nodeFlags);
  cleanups.push(() => passbook.stop());
  const twin = await benchProvider(passbookEnv, database.knex, 'postgres');
  const seed = await seedBench(database.knex, twin, options.signInConnections * 2);
  const bankApi = await startBankApiIfWanted(
    options,
    database,
    passbookEnv.ISSUER ?? passbook.url,
    seed,
    bankApiPort,
  );
  if (bankApi) cleanups.push(() => bankApi.server.stop());

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

  const run: Run = {
    options,
    database,
    passbook,
    passbookEnv,
    nodeFlags,
    ceiling,
    twin,
    seed,
    bankApi,
    rows: [],
    logFiles: [passbook.logFile, ...(bankApi ? [bankApi.server.logFile] : [])],
    cleanups,
  };
  await passbookWorkloads(run);
  if (options.ceiling) await ceilingWorkloads(run);
  await growthWorkloads(run);
  // Last, so that every one-process figure is taken as before any of them ran.
  await withSecondPassbook(run);
  await bankApiWorkload(run);

  const rows = sortRows(run.rows);
  const logged = await Promise.all(
    run.logFiles.map(async (file) => [file, await logProblems(file)] as const),
  );
  const logErrors = total(logged.map(([, errors]) => errors));
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
      passbookProcesses:
        rows.some((row) => row.server === 'Passbook ×2') || run.revocation
          ? '1; 2 for the "Passbook ×2" rows and the revocation delay'
          : 1,
      passbookStart: [
        ...Object.entries(start.env).map(([name, value]) => `${name}=${value}`),
        'node',
        ...nodeFlags,
      ].join(' '),
      serverLogErrors: logErrors,
    },
    rows,
    revocation: run.revocation,
    signInBudget: run.signInBudget,
    checks: checkTargets(rows, run.revocation),
    failed: failedRows(rows, run.revocation),
  };
  const written = await writeReport(report);
  const notes = notesText(rows).join('\n');
  const revocation = run.revocation ? `${revocationText(run.revocation)}\n\n` : '';
  const budget = run.signInBudget ? `${signInBudgetText(run.signInBudget)}\n\n` : '';
  say(
    `\n${textTable(rows)}\n${notes && `\n${notes}\n`}\n${revocation}${budget}${checksText(report.checks)}\n`,
  );
  for (const [file, errors] of logged) {
    if (errors) say(`${path.relative(ROOT, file)}: ${errors} errors logged`);
  }
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
