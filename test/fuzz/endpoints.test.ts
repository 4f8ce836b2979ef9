import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { openAccounts } from '../../src/bank-api/ledger.ts';
import { ibanFor } from '../../src/payments/iban.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import { startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import type { CustomerAgent } from '../support/customer-agent.ts';
import {
  basicAuthorization,
  registerTestApp,
  startTestPassbook,
  TEST_REDIRECT_URI,
  type TestPassbook,
} from '../support/passbook.ts';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.ts';
import { authorizationRequest, completeFlow } from '../support/third-party-app.ts';
import { fuzzRequests, type FuzzRequest, type FuzzWorld } from './requests.ts';
import {
  counts,
  storedState,
  unexpectedChanges,
  type AcceptedRequests,
  type StoredState,
} from './stored-state.ts';
import { createTwoStepCustomer } from '../support/two-step.ts';
import { mintPaymentToken, paymentDetail } from '../support/payment-tokens.ts';

/**
 * Property: whatever arrives at any endpoint of Passbook or the bank API, the answer is not a
 * 5xx, carries no stack trace or internal path, has the error form the endpoint's standard asks
 * for, and nothing stored changes (stored-state.ts says precisely what may). The run is bounded
 * and reproducible: FUZZ_SEED (default below), FUZZ_RUNS requests, FUZZ_TIME_LIMIT_MS at most;
 * fast-check prints the seed and the shrunk request of a failure.
 *
 * The servers run on a database of their own, so that no other test file's writes show up in
 * the comparison.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_206);
const RUNS = Number(process.env.FUZZ_RUNS ?? 3000);
const TIME_LIMIT_MS = Number(process.env.FUZZ_TIME_LIMIT_MS ?? 60_000);

let scratch: ScratchDatabase | undefined;
let passbook: TestPassbook | undefined;
let bankApi: TestBankApi | undefined;
let app: RegisteredClient;
let agent: CustomerAgent;
let accessToken: string;
let paymentToken: string;
let world: FuzzWorld;
let before: StoredState;
const accepted: AcceptedRequests = { interactionUids: new Set(), pushedRequestIds: new Set() };

function running<T>(server: T | undefined): T {
  if (!server) throw new Error('the servers start in beforeAll');
  return server;
}

/** The state once the last fire-and-forget write (audit events, last-used times) has landed. */
async function settledState(): Promise<StoredState> {
  let previous = await storedState(running(passbook).knex);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const current = await storedState(running(passbook).knex);
    if (JSON.stringify(counts(current)) === JSON.stringify(counts(previous))) return current;
    previous = current;
  }
}

beforeAll(async () => {
  scratch = await createScratchDatabase();
  passbook = await startTestPassbook({ DATABASE_URL: scratch.url });
  bankApi = await startTestBankApi(passbook, { BANK_API_DATABASE_URL: scratch.bankApiUrl });
  app = await registerTestApp(passbook);
  const publicApp = await registerTestApp(passbook, { name: 'Pocket Money', isPublic: true });
  const customer = await createTwoStepCustomer(passbook);
  const accountIban = ibanFor('NL', 'PSBK0000000001');
  await openAccounts(bankApi.knex, customer.id, [
    {
      name: 'Empty current account',
      kind: 'current',
      iban: accountIban,
      currency: 'EUR',
      openingBalanceMinor: 0,
      transactions: [],
    },
  ]);
  const flow = await completeFlow(passbook, app, customer, 'openid accounts:read transactions:read');
  agent = flow.agent;
  accessToken = flow.tokens.access_token;
  paymentToken = await mintPaymentToken(passbook, paymentDetail(accountIban), {
    clientId: app.client_id,
    customerId: customer.id,
  });
  // A sign-in in progress in the same browser, so that the interaction routes see a live one.
  const pending = await agent.open(
    (await authorizationRequest(flow.config, 'openid', { prompt: 'login' })).url.href,
  );
  const interactionUid = new URL(pending.url).pathname.split('/')[2] ?? '';
  const [account] = await bankApi
    .knex('bank.accounts')
    .where({ customer_id: customer.id })
    .select<{ id: string }[]>('id');
  const [session] = await passbook
    .knex('oidc_models')
    .where({ kind: 'Session', customer_id: customer.id })
    .select<{ uid: string }[]>('uid');
  world = {
    clientIds: [app.client_id, publicApp.client_id],
    redirectUri: TEST_REDIRECT_URI,
    interactionUid,
    sessionUid: session?.uid ?? '',
    accountId: account?.id ?? '',
    accountIban,
    username: customer.username,
  };
  before = await settledState();
}, 60_000);

afterAll(async () => {
  await bankApi?.close();
  await passbook?.close();
  await scratch?.drop();
});

interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

function authorization(request: FuzzRequest): string | undefined {
  const hostile = request.hostileCredential;
  switch (request.credentials) {
    case 'none':
      return undefined;
    case 'app-basic':
      return basicAuthorization(app);
    case 'resource-server-basic':
      return basicAuthorization(running(bankApi).resourceServer);
    case 'wrong-secret-basic':
      return basicAuthorization({ client_id: app.client_id, client_secret: 'not-the-secret' });
    case 'hostile-basic':
      // The id goes form-encoded into Basic credentials (RFC 6749 §2.3.1), so %00 decodes to a NUL.
      return `Basic ${Buffer.from(`${hostile}:not-the-secret`).toString('base64')}`;
    case 'access-token':
      return `Bearer ${accessToken}`;
    case 'payment-token':
      return `Bearer ${paymentToken}`;
    case 'hostile-bearer':
      return `Bearer ${hostile}`;
    case 'hostile-dpop':
      return `DPoP ${accessToken}`;
    case 'garbage':
      return `Basic ${hostile}`;
  }
}

async function cookies(request: FuzzRequest, url: string): Promise<string | undefined> {
  if (request.cookies === 'none') return undefined;
  if (request.cookies === 'customer') return (await agent.jar.getCookieString(url)) || undefined;
  const hostile = request.hostileCredential;
  return `passbook_session=${hostile}; passbook_session.sig=${hostile}; passbook_interaction=${hostile}`;
}

async function send(request: FuzzRequest): Promise<Answer> {
  const base = request.server === 'passbook' ? running(passbook).url : running(bankApi).url;
  const url = `${base}${request.path}${request.query ? `?${request.query}` : ''}`;
  const headers = new Headers();
  const credentials = authorization(request);
  if (credentials) headers.set('authorization', credentials);
  if (request.credentials === 'hostile-dpop') headers.set('dpop', request.hostileCredential);
  const cookie = await cookies(request, url);
  if (cookie) headers.set('cookie', cookie);
  if (request.contentType) headers.set('content-type', request.contentType);
  if (request.accept) headers.set('accept', request.accept);
  if (request.idempotencyKey !== undefined) headers.set('idempotency-key', request.idempotencyKey);
  const hasBody = request.body !== undefined && request.method !== 'GET' && request.method !== 'HEAD';
  const response = await fetch(url, {
    method: request.method,
    headers,
    body: hasBody ? Buffer.from(request.body ?? '', request.bodyIsBytes ? 'latin1' : 'utf8') : undefined,
    redirect: 'manual',
    signal: AbortSignal.timeout(15_000),
  });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** Stack frames, exception names and file paths: what an attacker must never read. */
const INTERNALS = [
  /^\s*at\s+\S/m,
  /\bat \S+ \(.*:\d+:\d+\)/,
  /node_modules/,
  /\.(ts|js|mjs|cjs):\d+/,
  /\b(TypeError|RangeError|SyntaxError|URIError|ReferenceError|error: invalid byte sequence)\b/,
];

const OAUTH_JSON_ROUTES = new Set([
  'POST /token',
  'POST /token/introspection',
  'POST /token/revocation',
  'POST /request',
  'GET /me',
  'POST /me',
]);
/** Our own pages always answer with the error page; the provider's negotiate by Accept. */
const OUR_PAGES = /^\w+ \/(interaction|account)(\/|$)/;
const PROVIDER_PAGES = /^(GET \/auth|GET \/session\/end|POST \/session\/end\/confirm)/;

/** Why this answer breaks the property, or undefined when it keeps it. */
function violation(request: FuzzRequest, answer: Answer): string | undefined {
  if (answer.status >= 500) return `answered ${answer.status}`;
  const leaked = INTERNALS.find((pattern) => pattern.test(answer.body));
  if (leaked) return `the body shows internals (${leaked})`;
  // 431 and 413 come from Node.js's HTTP parser or a size limit before any route runs.
  if (answer.status < 400 || answer.status === 431 || !request.onRoute) return undefined;
  const type = answer.headers.get('content-type') ?? '';
  const prefersHtml = request.accept?.startsWith('text/html') === true;
  // The endpoints an app calls answer JSON whatever the caller prefers.
  if (OAUTH_JSON_ROUTES.has(request.endpoint) || request.server === 'bank') {
    if (!type.startsWith('application/json')) return `an error as ${type || 'no content type'}, not JSON`;
    const { error } = JSON.parse(answer.body) as { error?: unknown };
    if (typeof error !== 'string') return 'a JSON error without an error code';
  }
  const wantsPage =
    (request.server === 'passbook' && OUR_PAGES.test(request.endpoint)) ||
    (PROVIDER_PAGES.test(request.endpoint) && prefersHtml);
  if (wantsPage && !type.startsWith('text/html')) {
    return `an error as ${type || 'no content type'}, not the error page`;
  }
  return undefined;
}

/** A valid request is stored; note what, so that the comparison expects exactly that. */
function noteAccepted(request: FuzzRequest, answer: Answer): void {
  const interaction = /^\/interaction\/([^/?#]+)/.exec(answer.headers.get('location') ?? '');
  if (request.endpoint === 'GET /auth' && interaction?.[1]) accepted.interactionUids.add(interaction[1]);
  if (request.endpoint === 'POST /request' && answer.status === 201) {
    const { request_uri: uri } = JSON.parse(answer.body) as { request_uri?: string };
    const id = uri?.split(':').pop();
    if (id) accepted.pushedRequestIds.add(id);
  }
}

const statuses = new Map<number, number>();
let requests = 0;

describe('every endpoint, fuzzed', () => {
  test(
    'answers anything it is sent with a 4xx or better, in its standard error form, and no internals',
    async () => {
      const started = performance.now();
      try {
        await fc.assert(
          fc.asyncProperty(fuzzRequests(world), async (request) => {
            const answer = await send(request);
            requests += 1;
            statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
            noteAccepted(request, answer);
            const problem = violation(request, answer);
            if (problem) throw new Error(`${request.endpoint} ${problem}:\n${answer.body.slice(0, 500)}`);
          }),
          { seed: SEED, numRuns: RUNS, plugins: [fc.interruptAfterTimeLimit(TIME_LIMIT_MS)] },
        );
      } finally {
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        const histogram = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`);
        process.stdout.write(
          `fuzz: ${requests} requests in ${seconds} s, seed ${SEED}; ${histogram.join(', ')}; ` +
            `accepted ${accepted.interactionUids.size} interactions, ${accepted.pushedRequestIds.size} pushed requests\n`,
        );
      }
    },
    TIME_LIMIT_MS + 120_000,
  );

  test('changed no stored row that it had no right to', async () => {
    const after = await settledState();
    const figures = Object.entries(counts(after)).map(
      ([table, rows]) => `${table} ${counts(before)[table] ?? 0}->${rows}`,
    );
    process.stdout.write(`fuzz: rows before->after: ${figures.join(', ')}\n`);
    expect(unexpectedChanges(before, after, accepted)).toEqual([]);
  });
});
