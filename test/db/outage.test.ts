import { mkdtemp, chmod, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.ts';
import { createLogger } from '../../src/log.ts';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import { createRunDatabaseWithBankApi } from '../support/database.ts';
import {
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  TEST_REDIRECT_URI,
  type TestPassbook,
} from '../support/passbook.ts';
import { authorizationRequest, completeFlow, discoverAs } from '../support/third-party-app.ts';
import { CustomerAgent } from '../support/customer-agent.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';

/**
 * PostgreSQL stopped under load and started again: a PostgreSQL of this file's own (embedded, on
 * a free port in a temporary folder), so that stopping it disturbs no other test. Every answer
 * comes within seconds and is never a 500; while the database is away the answers are 503 with
 * Retry-After in each endpoint's own form; once it is back, the same Passbook and bank API serve
 * again, and the refresh-token chain that was rotated throughout still works. The same holds
 * for a database that hangs without closing a connection (every PostgreSQL process stopped with
 * SIGSTOP): only Passbook's own timeouts can end those waits.
 */

const silent = createLogger({ logLevel: 'silent' });
/** The most any answer may take, outage or not. */
const ANSWER_WITHIN_MS = 5_000;
const OUTAGE_MS = 4_000;

let dir: string;
let port: number;
let database: EmbeddedDatabase;
let passbook: TestPassbook;
let bankApi: TestBankApi;
let app: RegisteredClient;
let signedIn: CustomerAgent;
let accessToken: string;
let refreshToken: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'passbook-outage-pg-'));
  // As root, PostgreSQL runs as `postgres` and must be let into the folder.
  await chmod(dir, 0o755);
  port = 20_000 + Math.floor(Math.random() * 20_000);
  database = await startEmbeddedPostgres(dir, port, silent);
  const adminUrl = new URL(database.url);
  adminUrl.pathname = '/postgres';
  const { url, bankApiUrl } = await createRunDatabaseWithBankApi(adminUrl.href);
  passbook = await startTestPassbook({ DATABASE_URL: url });
  bankApi = await startTestBankApi(passbook, { BANK_API_DATABASE_URL: bankApiUrl });
  const customer = await createTestCustomer(passbook.knex);
  await seedDemoAccounts(bankApi.knex, customer.id);
  app = await registerTestApp(passbook);
  const flow = await completeFlow(passbook, app, customer, 'openid offline_access accounts:read');
  signedIn = flow.agent;
  accessToken = flow.tokens.access_token;
  const refresh = flow.tokens.refresh_token;
  if (!refresh) throw new Error('the flow gave no refresh token');
  refreshToken = refresh;
}, 90_000);

afterAll(async () => {
  await bankApi?.close();
  await passbook?.close();
  await database?.stop();
  await rm(dir, { recursive: true, force: true });
  // Outside dir when `postgres` could not reach it (a private TMPDIR, as root).
  if (database) await rm(database.clusterDir, { recursive: true, force: true });
}, 30_000);

type Probe = 'introspection' | 'refresh' | 'authorization' | 'sign-in' | 'account' | 'bank-api';
type Phase = 'up' | 'stopping' | 'down' | 'starting' | 'back';
/** The hanging database's phases map onto the stopped one's: `down` is "hung", `back` is resumed. */

interface Answer {
  probe: Probe;
  /** The phase when the request was sent and when its answer came: only `down` both times is "during". */
  sentIn: Phase;
  answeredIn: Phase;
  status: number;
  ms: number;
  retryAfter: string | null;
  contentType: string;
  body: string;
}

let phase: Phase = 'up';

async function timed(probe: Probe, send: (signal: AbortSignal) => Promise<Response>): Promise<Answer> {
  const sentIn = phase;
  const started = performance.now();
  try {
    const response = await send(AbortSignal.timeout(ANSWER_WITHIN_MS * 2));
    const body = await response.text();
    return {
      probe,
      sentIn,
      answeredIn: phase,
      status: response.status,
      ms: performance.now() - started,
      retryAfter: response.headers.get('retry-after'),
      contentType: response.headers.get('content-type') ?? '',
      body,
    };
  } catch (error) {
    // No answer at all (a reset connection or the timeout): recorded as status 0, which fails.
    return {
      probe,
      sentIn,
      answeredIn: phase,
      status: 0,
      ms: performance.now() - started,
      retryAfter: null,
      contentType: '',
      body: String(error),
    };
  }
}

function form(values: Record<string, string>): URLSearchParams {
  return new URLSearchParams(values);
}

const probes: Record<Probe, () => Promise<Answer>> = {
  introspection: () =>
    timed('introspection', (signal) =>
      fetch(`${passbook.issuer}/token/introspection`, {
        method: 'POST',
        headers: { authorization: basicAuthorization(bankApi.resourceServer) },
        body: form({ token: accessToken }),
        signal,
      }),
    ),
  refresh: async () => {
    const answer = await timed('refresh', (signal) =>
      fetch(`${passbook.issuer}/token`, {
        method: 'POST',
        headers: { authorization: basicAuthorization(app) },
        body: form({ grant_type: 'refresh_token', refresh_token: refreshToken }),
        signal,
      }),
    );
    if (answer.status === 200) {
      const tokens = JSON.parse(answer.body) as { refresh_token: string; access_token: string };
      refreshToken = tokens.refresh_token;
      accessToken = tokens.access_token;
    }
    return answer;
  },
  authorization: async () => {
    const request = await authorizationRequest(await configuration);
    return timed('authorization', (signal) =>
      fetch(request.url, { redirect: 'manual', headers: { accept: 'text/html' }, signal }),
    );
  },
  'sign-in': async () => {
    const cookie = await signingIn.jar.getCookieString(signInPage);
    return timed('sign-in', (signal) =>
      fetch(signInPage, { redirect: 'manual', headers: { cookie, accept: 'text/html' }, signal }),
    );
  },
  account: async () => {
    const cookie = await signedIn.jar.getCookieString(`${passbook.issuer}/account`);
    return timed('account', (signal) =>
      fetch(`${passbook.issuer}/account`, {
        redirect: 'manual',
        headers: { cookie, accept: 'text/html' },
        signal,
      }),
    );
  },
  'bank-api': () =>
    timed('bank-api', (signal) =>
      fetch(`${bankApi.url}/accounts`, {
        headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
        signal,
      }),
    ),
};

let configuration: ReturnType<typeof discoverAs>;
/** A sign-in screen opened before the outage, by a customer who has not signed in yet. */
const signingIn = new CustomerAgent([TEST_REDIRECT_URI]);
let signInPage: string;

/** What each probe answers when all is well. */
function succeeded(answer: Answer): boolean {
  if (answer.probe === 'authorization') return answer.status === 303 || answer.status === 302;
  if (answer.probe === 'sign-in') return answer.status === 200 && answer.body.includes('name="password"');
  if (answer.probe === 'introspection') return answer.status === 200 && answer.body.includes('"active":true');
  return answer.status === 200;
}

/** Runs every probe in its own sequential loop until `until` resolves. */
async function underLoad(until: Promise<void>): Promise<Answer[]> {
  const answers: Answer[] = [];
  let done = false;
  void until.finally(() => {
    done = true;
  });
  await Promise.all(
    Object.values(probes).map(async (probe) => {
      while (!done) {
        answers.push(await probe());
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }),
  );
  return answers;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function summary(answer: Answer): string {
  return `${answer.probe} ${answer.sentIn}->${answer.answeredIn} ${answer.status} in ${Math.round(answer.ms)} ms: ${answer.body.slice(0, 300)}`;
}

/** Every answer in time and never a 500; while the database was away, 503 in each endpoint's form. */
function expectOutageAnswers(answers: Answer[], withinMs: number): void {
  for (const answer of answers) {
    expect(answer.ms <= withinMs ? 'ok' : summary(answer)).toBe('ok');
    // 0 is no answer at all; 503 is the only 5xx an outage may bring.
    const refused = answer.status === 0 || (answer.status >= 500 && answer.status !== 503);
    expect(refused ? summary(answer) : 'ok').toBe('ok');
    expect(answer.body).not.toMatch(/\n\s+at |node_modules|Error:/);
  }

  const during = answers.filter((answer) => answer.sentIn === 'down' && answer.answeredIn === 'down');
  for (const probe of Object.keys(probes)) expect(during.some((answer) => answer.probe === probe)).toBe(true);
  for (const answer of during) {
    expect(answer.status === 503 ? 'ok' : summary(answer)).toBe('ok');
    expect(answer.retryAfter).toMatch(/^\d+$/);
    if (answer.probe === 'introspection' || answer.probe === 'refresh' || answer.probe === 'bank-api') {
      expect(answer.contentType).toMatch(/application\/json/);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'temporarily_unavailable' });
    } else {
      expect(answer.contentType).toMatch(/text\/html/);
      expect(answer.body).toContain('try again in a few moments');
    }
  }
}

/** The same processes serve again, and nothing is half written. */
async function expectRecovered(answers: Answer[]): Promise<void> {
  // Without a restart: the last answer of every probe succeeded.
  for (const probe of Object.keys(probes)) {
    const last = answers.filter((answer) => answer.probe === probe).at(-1);
    expect(last && (succeeded(last) ? 'ok' : summary(last))).toBe('ok');
  }

  // The newest refresh token of the chain still works, and the grant lives.
  const again = await probes.refresh();
  expect(again.status === 200 ? 'ok' : summary(again)).toBe('ok');
  expect(succeeded(await probes.introspection())).toBe(true);
  // One chain in this database, and exactly one of its refresh tokens unconsumed: the newest.
  const live = await passbook.knex('oidc_models').where({ kind: 'RefreshToken' }).whereNull('consumed_at');
  expect(live).toHaveLength(1);
}

async function expectEveryProbeSucceeds(): Promise<void> {
  for (const probe of Object.values(probes)) {
    const answer = await probe();
    expect(succeeded(answer) ? 'ok' : summary(answer)).toBe('ok');
  }
}

test('a database stopped and started again under load', async () => {
  configuration = discoverAs(passbook, app);
  signInPage = (await signingIn.open((await authorizationRequest(await configuration)).url.href)).url;
  expect(signInPage).toContain('/interaction/');
  await expectEveryProbeSucceeds();

  phase = 'up';
  const outage = (async () => {
    await sleep(1_000);
    phase = 'stopping';
    await database.stop();
    phase = 'down';
    await sleep(OUTAGE_MS);
    phase = 'starting';
    database = await startEmbeddedPostgres(dir, port, silent);
    phase = 'back';
    // Long enough for every probe to have run again on the database that came back.
    await sleep(3_000);
  })();
  const answers = await underLoad(outage);
  await outage;

  expectOutageAnswers(answers, ANSWER_WITHIN_MS);
  await expectRecovered(answers);
}, 60_000);

/** The postmaster and every backend it forked: all of PostgreSQL's processes for this cluster. */
async function clusterProcesses(): Promise<number[]> {
  const postmaster = Number(
    (await readFile(path.join(database.clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0],
  );
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Field 4 of /proc/PID/stat, after the parenthesised command name, is the parent's pid.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (parent === postmaster) children.push(Number(entry));
  }
  return [postmaster, ...children];
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // A backend that ended meanwhile.
    }
  }
}

/**
 * Every wait ends by Passbook's own timeouts: the statement's client-side limit, then the pool's
 * acquire and connect limits (DATABASE_*_TIMEOUT_MS, 3 s, 3 s and 2 s by default), so an answer
 * may take up to about two of them back to back.
 */
const HUNG_ANSWER_WITHIN_MS = 10_000;
// Long enough that every probe sends and gets answered a request wholly inside it, even one whose
// request before took the longest wait.
const HANG_MS = 12_000;

test('a database that hangs without closing its connections', async () => {
  await expectEveryProbeSucceeds();
  // Connections may have been opened by the restarted database since: stop every process of it.
  const stopped: number[] = [];
  phase = 'up';
  const hang = (async () => {
    await sleep(1_000);
    stopped.push(...(await clusterProcesses()));
    signalAll(stopped, 'SIGSTOP');
    phase = 'down';
    await sleep(HANG_MS);
    phase = 'starting';
    signalAll(stopped, 'SIGCONT');
    phase = 'back';
    // The connections Passbook gave up on are replaced; every probe runs again on them.
    await sleep(5_000);
  })();
  try {
    const answers = await underLoad(hang);
    await hang;
    expectOutageAnswers(answers, HUNG_ANSWER_WITHIN_MS);
    await expectRecovered(answers);
  } finally {
    signalAll(stopped, 'SIGCONT');
  }
}, 90_000);
