import type Provider from 'oidc-provider';
import { inParallel, mintAccessToken, type MintTarget } from './mint.ts';
import { startLoad } from './processes.ts';
import type { RevocationDelay } from './report.ts';
import type { Credentials } from './workloads.ts';

/**
 * How soon a token revoked at one Passbook process (A) is refused by another on the same database
 * (B), while B is busy introspecting another token for autocannon. Each token is first seen
 * active at B, so that a per-process cache on B would hold it; then the app revokes it at A
 * (RFC 7009), and B is asked in a tight loop until it answers active:false. The delay runs from
 * the arrival of A's answer to the arrival of B's first active:false, so it always includes one
 * introspection at B under that load.
 */

export interface RevocationSetup {
  /** Writes the tokens into Passbook's database, as the code exchange would. */
  twin: Provider;
  target: MintTarget;
  /** The app that holds the tokens and revokes them. */
  app: Credentials;
  /** The bank API's registration, which introspects at B. */
  resourceServer: Credentials;
  /** Base URLs of the two processes. */
  a: string;
  b: string;
  /** autocannon's connections to B meanwhile. */
  connections: number;
}

const TOKENS = 1_000;
/** How long one token is watched at B before it is counted as still active. */
const WATCH_LIMIT_MS = 2_000;
/** No new token is started after this, so that a slow machine still ends the section in time. */
const BUDGET_MS = 45_000;
/** Errors after which the section gives up: something is wrong beyond one answer. */
const MAX_ERRORS = 20;

class UnexpectedAnswer extends Error {
  override name = 'UnexpectedAnswer';
}

function basic(client: Credentials): string {
  const encode = (value: string) => encodeURIComponent(value);
  return `Basic ${Buffer.from(`${encode(client.clientId)}:${encode(client.clientSecret)}`).toString('base64')}`;
}

function tokenForm(url: string, client: Credentials, token: string): [string, RequestInit] {
  return [
    url,
    {
      method: 'POST',
      headers: {
        authorization: basic(client),
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
    },
  ];
}

interface Endpoints {
  revocation: string;
  introspection: string;
}

/** A's revocation endpoint and B's introspection endpoint, where discovery puts them. */
async function endpoints(a: string, b: string): Promise<Endpoints> {
  const response = await fetch(`${a}/.well-known/openid-configuration`);
  const discovery = (await response.json()) as {
    revocation_endpoint?: string;
    introspection_endpoint?: string;
  };
  if (!discovery.revocation_endpoint || !discovery.introspection_endpoint)
    throw new Error('discovery names no revocation or introspection endpoint');
  return {
    revocation: new URL(new URL(discovery.revocation_endpoint).pathname, a).href,
    introspection: new URL(new URL(discovery.introspection_endpoint).pathname, b).href,
  };
}

/** Whether B calls the token active, and when its answer had arrived. */
async function introspect(
  url: string,
  client: Credentials,
  token: string,
): Promise<{ active: boolean; at: number }> {
  const response = await fetch(...tokenForm(url, client, token));
  const text = await response.text();
  const at = performance.now();
  const active = response.status === 200 ? (JSON.parse(text) as { active?: unknown }).active : undefined;
  if (typeof active !== 'boolean')
    throw new UnexpectedAnswer(`introspection at B: ${response.status} ${text.slice(0, 200)}`);
  return { active, at };
}

/** Revokes the token at A; returns when A's answer had arrived. */
async function revoke(url: string, client: Credentials, token: string): Promise<number> {
  const response = await fetch(...tokenForm(url, client, token));
  const text = await response.text();
  const at = performance.now();
  if (response.status !== 200)
    throw new UnexpectedAnswer(`revocation at A: ${response.status} ${text.slice(0, 200)}`);
  return at;
}

interface Watched {
  delayMs: number;
  looks: number;
  stillActive: boolean;
}

async function watchOne(setup: RevocationSetup, where: Endpoints, token: string): Promise<Watched> {
  const { app, resourceServer } = setup;
  const started = performance.now();
  while (!(await introspect(where.introspection, resourceServer, token)).active) {
    if (performance.now() - started > WATCH_LIMIT_MS)
      throw new UnexpectedAnswer('B never called the fresh token active');
  }
  const revokedAt = await revoke(where.revocation, app, token);
  for (let looks = 1; ; looks += 1) {
    const { active, at } = await introspect(where.introspection, resourceServer, token);
    if (!active) return { delayMs: at - revokedAt, looks, stillActive: false };
    if (at - revokedAt >= WATCH_LIMIT_MS) return { delayMs: WATCH_LIMIT_MS, looks, stillActive: true };
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

interface Watch {
  watched: Watched[];
  errors: number;
  errorSample?: string;
}

async function watchAll(setup: RevocationSetup, where: Endpoints, tokens: string[]): Promise<Watch> {
  const watch: Watch = { watched: [], errors: 0 };
  const deadline = performance.now() + BUDGET_MS;
  for (const token of tokens) {
    if (performance.now() > deadline || watch.errors >= MAX_ERRORS) break;
    try {
      watch.watched.push(await watchOne(setup, where, token));
    } catch (error) {
      watch.errors += 1;
      watch.errorSample ??= (error as Error).message;
    }
  }
  return watch;
}

export async function measureRevocationDelay(setup: RevocationSetup): Promise<RevocationDelay> {
  const where = await endpoints(setup.a, setup.b);
  // Minted beforehand, so that the loop is revocations and introspections only; none is seen before its turn.
  const [other, ...tokens] = await inParallel(TOKENS + 1, 16, () =>
    mintAccessToken(setup.twin, setup.target),
  );
  const background = startLoad({
    kind: 'introspect',
    client: setup.resourceServer,
    token: other ?? '',
    urls: [setup.b],
    connections: setup.connections,
    warmupSeconds: 0,
    durationSeconds: BUDGET_MS / 1000 + 30,
  });
  let watch: Watch;
  try {
    // Until autocannon is up: the first tokens would otherwise meet an idle B.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    watch = await watchAll(setup, where, tokens);
  } finally {
    background.stop();
  }
  const load = await background.result;
  const delays = watch.watched.map((one) => one.delayMs).sort((x, y) => x - y);
  return {
    tokens: watch.watched.length,
    p50Ms: percentile(delays, 50),
    p99Ms: percentile(delays, 99),
    maxMs: delays.at(-1) ?? 0,
    inactiveAtFirstLook: watch.watched.filter((one) => one.looks === 1 && !one.stillActive).length,
    stillActive: watch.watched.filter((one) => one.stillActive).length,
    watchLimitMs: WATCH_LIMIT_MS,
    errors: watch.errors,
    errorSample: watch.errorSample ?? load.errorSample,
    background: {
      connections: setup.connections,
      perSecond: load.perSecond,
      p99Ms: load.p99Ms,
      errors: load.errors,
    },
  };
}
