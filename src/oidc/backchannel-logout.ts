import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type Provider from 'oidc-provider';
import { errors, type ClientMetadata, type Configuration } from 'oidc-provider';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { isSpecialUseIP, sendBackchannelLogout, type LogoutTokenRecipient } from './engine-internals.ts';

/**
 * Back-channel logout delivery: which `backchannel_logout_uri` Passbook calls, how
 * oidc-provider's protection against server-side request forgery (SSRF) applies to it, what a
 * registration is refused for, and what a failed delivery leaves behind (a log line and a count).
 * Everything that depends on how oidc-provider sends logout tokens lives here.
 *
 * How oidc-provider sends one: `client.backchannelLogout(sub, sid)` (called through
 * engine-internals.ts, like every undocumented part of the engine) signs the logout token and
 * POSTs it through the `fetch` configuration hook, with `init.dispatcher` set to its guard, an
 * undici Agent that destroys every connection whose peer address is special-use (loopback,
 * private, link-local, carrier-grade NAT, documentation ranges...). The guard checks the address
 * actually connected to, so a DNS answer cannot slip past it. oidc-provider builds the guard from
 * the constructor of Node's global undici dispatcher, a symbol-keyed global; jest copies only
 * string-keyed globals into a test's context, so under plain jest the guard is missing and
 * oidc-provider warns "failed to setup SSRF protection" and sends unguarded (the back-channel
 * tests run in test/support/node-fetch-environment.ts, which restores that global).
 *
 * The policy:
 * - https only; plain http only to a loopback host, and only when NODE_ENV is development or test.
 * - Hosts in BACKCHANNEL_LOGOUT_ALLOWED_HOSTS (exact names or addresses of the bank's own apps;
 *   by default none in production, loopback elsewhere) are called without the guard: the
 *   operator who listed them vouches for where they point.
 * - Every other host goes through the guard. Should it be missing, delivery is refused rather
 *   than sent unchecked.
 * - Registration refuses a URI this policy could never deliver to. For a host name that means
 *   resolving it now, which is best effort: a name may point elsewhere tomorrow (the guard still
 *   decides at delivery), and a name that does not resolve yet is accepted.
 *
 * A failed delivery never stops the sign-out. It is logged (warn, with the client_id and the
 * reason, never the token) and counted in `deliveryFailures` (served by src/metrics/provider-events.ts). It is not
 * an audit event: the customer can do nothing about an app's unreachable endpoint; the bank's
 * operators and the app's owner can, and they read the logs.
 */

export interface BackchannelLogoutPolicy {
  /** Bare host names and addresses (lower-case, IPv6 without brackets) exempt from the guard. */
  allowedHosts: ReadonlySet<string>;
  /** Whether http is accepted for a loopback host (the local demo), never in production. */
  httpToLoopback: boolean;
}

export function backchannelLogoutPolicy(
  config: Pick<Config, 'env' | 'backchannelLogoutAllowedHosts'>,
): BackchannelLogoutPolicy {
  return {
    allowedHosts: new Set(config.backchannelLogoutAllowedHosts),
    httpToLoopback: config.env !== 'production',
  };
}

/** The host as the allow-list spells it: URL.hostname without IPv6 brackets. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

function isLoopback(host: string): boolean {
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '::1' ||
    (isIP(host) === 4 && host.startsWith('127.'))
  );
}

/** Why the scheme rules out this URI, if they do. */
function schemeRefusal(url: URL, policy: BackchannelLogoutPolicy): string | undefined {
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && policy.httpToLoopback && isLoopback(bareHost(url))) return undefined;
  return policy.httpToLoopback
    ? 'it must use https (http only to a loopback host, outside production)'
    : 'it must use https';
}

const NOT_LISTED =
  'a loopback, private or other special-use address, and the host is not in BACKCHANNEL_LOGOUT_ALLOWED_HOSTS';

// Registration waits for DNS at most this long; a slow answer counts as no answer.
const LOOKUP_TIMEOUT_MS = 3000;

async function resolvedAddresses(host: string): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string[]>((resolve) => {
    timer = setTimeout(() => resolve([]), LOOKUP_TIMEOUT_MS);
  });
  try {
    const answer = lookup(host, { all: true }).then(
      (found) => found.map(({ address }) => address),
      () => [],
    );
    return await Promise.race([answer, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Why the policy could never deliver to this URI, or undefined if it could. */
export async function undeliverableReason(
  uri: string,
  policy: BackchannelLogoutPolicy,
): Promise<string | undefined> {
  const url = URL.parse(uri);
  // A malformed URI is oidc-provider's to refuse, with its own message.
  if (!url) return undefined;
  const byScheme = schemeRefusal(url, policy);
  if (byScheme) return byScheme;
  const host = bareHost(url);
  if (policy.allowedHosts.has(host)) return undefined;
  if (isIP(host)) return isSpecialUseIP(host) ? `${host} is ${NOT_LISTED}` : undefined;
  const special = (await resolvedAddresses(host)).find((address) => isSpecialUseIP(address));
  return special ? `${host} resolves to ${special}, ${NOT_LISTED}` : undefined;
}

/**
 * Makes the provider's client validation, which every registration goes through (createClient,
 * the CLI, the demo seed), also refuse a back-channel logout URI the policy could never deliver to.
 */
export function refuseUndeliverableLogoutUris(provider: Provider, policy: BackchannelLogoutPolicy): void {
  const validate = provider.Client.validate.bind(provider.Client);
  provider.Client.validate = async (metadata: ClientMetadata) => {
    await validate(metadata);
    const uri = metadata.backchannel_logout_uri;
    if (typeof uri !== 'string') return;
    const reason = await undeliverableReason(uri, policy);
    if (reason) {
      throw new errors.InvalidClientMetadata(
        `backchannel_logout_uri ${uri} could never receive logout tokens: ${reason}`,
      );
    }
  };
}

/** A delivery Passbook's policy stops before anything is sent. */
class LogoutDeliveryRefused extends Error {
  override name = 'LogoutDeliveryRefused';
}

function isLogoutDelivery(init: RequestInit): boolean {
  // oidc-provider's fetch hook carries every outgoing request; only logout tokens come as this
  // form. Should a release send them otherwise, they fall under the guard like the rest, and the
  // loopback delivery tests fail.
  return init.method === 'POST' && init.body instanceof URLSearchParams && init.body.has('logout_token');
}

function targetOf(input: string | URL | Request): URL {
  return new URL(typeof input === 'string' ? input : 'href' in input ? input.href : input.url);
}

/**
 * oidc-provider's `fetch` hook. A logout token goes out under the policy above; every other
 * request the provider makes (a client's jwks_uri, say) goes out as oidc-provider sets it up.
 */
export function logoutDeliveryFetch(policy: BackchannelLogoutPolicy): NonNullable<Configuration['fetch']> {
  return async (input, init = {}) => {
    if (!isLogoutDelivery(init)) return fetch(input, init);
    const url = targetOf(input);
    const byScheme = schemeRefusal(url, policy);
    if (byScheme) throw new LogoutDeliveryRefused(`${url.origin} refused: ${byScheme}`);
    if (policy.allowedHosts.has(bareHost(url))) {
      const unguarded: RequestInit = { ...init };
      delete unguarded.dispatcher;
      return fetch(input, unguarded);
    }
    if (!init.dispatcher) {
      throw new LogoutDeliveryRefused(
        `${url.origin} refused: oidc-provider's SSRF guard is not active in this runtime`,
      );
    }
    return fetch(input, init);
  };
}

export type DeliveryFailureKind =
  /** Stopped by the policy or by the SSRF guard before anything was sent. */
  | 'refused'
  /** No connection, or it broke. */
  | 'unreachable'
  /** No answer within oidc-provider's 2.5 seconds. */
  | 'timeout'
  /** The app answered, with something other than 200 or 204. */
  | 'rejected';

const FAILURE_KINDS: readonly DeliveryFailureKind[] = ['refused', 'unreachable', 'timeout', 'rejected'];

/** Failed deliveries since the process started, by kind, read by the metrics at each scrape. */
class DeliveryFailureCounter {
  readonly #counts = new Map<DeliveryFailureKind, number>();

  increment(kind: DeliveryFailureKind): void {
    this.#counts.set(kind, this.count(kind) + 1);
  }

  count(kind?: DeliveryFailureKind): number {
    if (kind) return this.#counts.get(kind) ?? 0;
    return FAILURE_KINDS.reduce((sum, each) => sum + this.count(each), 0);
  }

  byKind(): Record<DeliveryFailureKind, number> {
    return Object.fromEntries(FAILURE_KINDS.map((kind) => [kind, this.count(kind)])) as Record<
      DeliveryFailureKind,
      number
    >;
  }
}

export const deliveryFailures = new DeliveryFailureCounter();

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  cause?: unknown;
  response?: { status?: unknown };
}

function asErrorLike(value: unknown): ErrorLike {
  return typeof value === 'object' && value !== null ? value : { message: String(value) };
}

function nonEmptyText(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** What went wrong, in words fit for a log line: the reasons never carry the logout token. */
function describeDeliveryFailure(error: unknown): { kind: DeliveryFailureKind; reason: string } {
  if (error instanceof LogoutDeliveryRefused) return { kind: 'refused', reason: error.message };
  const failure = asErrorLike(error);
  if (failure.name === 'TimeoutError' || failure.name === 'AbortError') {
    return { kind: 'timeout', reason: 'no answer in time' };
  }
  if (typeof failure.response?.status === 'number') {
    return { kind: 'rejected', reason: `the app answered HTTP ${failure.response.status}` };
  }
  // fetch rejects with "fetch failed"; what happened is in the cause.
  const cause = asErrorLike(failure.cause ?? failure);
  const detail = nonEmptyText(cause.message) ?? nonEmptyText(cause.code) ?? 'unknown error';
  if (detail.includes('special-use')) return { kind: 'refused', reason: `SSRF guard: ${detail}` };
  const code = typeof cause.code === 'string' && !detail.includes(cause.code) ? ` (${cause.code})` : '';
  return { kind: 'unreachable', reason: `${detail}${code}` };
}

/** Where the customer signed out. */
export type SignOutPath = 'end_session' | 'account_pages';

function recordDeliveryFailure(log: Logger, clientId: string, path: SignOutPath, error: unknown): void {
  const { kind, reason } = describeDeliveryFailure(error);
  deliveryFailures.increment(kind);
  log.warn({ clientId, failure: kind, reason, signOut: path }, 'back-channel logout not delivered');
}

/** Logs and counts the deliveries of RP-initiated logout (/session/end), which oidc-provider makes. */
export function reportLogoutDeliveryFailures(provider: Provider, log: Logger): void {
  provider.on('backchannel.error', (_ctx, error, client) => {
    recordDeliveryFailure(log, client.clientId, 'end_session', error);
  });
}

/**
 * Sends one app its logout token for a sign-out outside /session/end; never throws. Returns
 * whether the app took it.
 */
export async function sendLogoutToken(
  client: LogoutTokenRecipient,
  accountId: string,
  sid: string | undefined,
  log: Logger,
  path: SignOutPath = 'account_pages',
): Promise<boolean> {
  try {
    await sendBackchannelLogout(client, accountId, sid);
    return true;
  } catch (error) {
    recordDeliveryFailure(log, client.clientId, path, error);
    return false;
  }
}
