import { createHash } from 'node:crypto';
import type { BankApiConfig } from './config.ts';

/**
 * Asks Passbook about an access token (RFC 7662) on every request, with the bank API's own
 * client credentials. Nothing is cached, so a revoked token stops working at once. Anything
 * short of a clear answer from Passbook is PassbookUnavailableError: the caller then refuses
 * the request (fails closed) instead of guessing.
 */

export interface AccessToken {
  /** The customer the token was issued for. */
  customerId: string;
  /** The app holding the token. */
  clientId: string;
  scopes: ReadonlySet<string>;
  /** How the customer signed in (RFC 8176), as Passbook recorded it; empty when it says nothing. */
  amr: readonly string[];
  /** The level of assurance of that sign-in, if Passbook names one. */
  acr: string | undefined;
  /**
   * For a DPoP-bound token (RFC 9449 §6.2), the thumbprint of the key it is bound to: it is
   * accepted only with a proof signed by that key. Undefined for a Bearer token.
   */
  jkt: string | undefined;
  /** The one resource the token is for (RFC 8707 `aud`); undefined for an ordinary scoped token. */
  audience: string | undefined;
  /**
   * What the customer approved in detail (RFC 9396), such as one payment; empty when the token
   * carries none, or when what Passbook answered is not a well-formed list of details.
   */
  authorizationDetails: readonly AuthorizationDetail[];
  /** SHA-256 of the token itself (hex): names the token in the ledger without keeping it. */
  tokenSha256: string;
}

/** One authorization detail (RFC 9396 §2): its type, the common members checked, the rest as sent. */
export interface AuthorizationDetail {
  readonly type: string;
  readonly locations?: readonly string[];
  readonly actions?: readonly string[];
  readonly [member: string]: unknown;
}

/** The token when it is a live Bearer or DPoP access token for a customer; undefined for anything else. */
export type Introspect = (token: string) => Promise<AccessToken | undefined>;

export class PassbookUnavailableError extends Error {
  override name = 'PassbookUnavailableError';
}

interface IntrospectionAnswer {
  active?: unknown;
  token_type?: unknown;
  iss?: unknown;
  sub?: unknown;
  client_id?: unknown;
  scope?: unknown;
  exp?: unknown;
  cnf?: unknown;
  acr?: unknown;
  amr?: unknown;
  aud?: unknown;
  authorization_details?: unknown;
}

/** RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined and base64-encoded. */
function basicCredentials(clientId: string, clientSecret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function errorCode(response: Response): Promise<unknown> {
  try {
    const body: unknown = await response.json();
    return isJsonObject(body) ? body.error : undefined;
  } catch {
    return undefined;
  }
}

async function askPassbook(config: BankApiConfig, token: string): Promise<IntrospectionAnswer> {
  let response: Response;
  try {
    response = await fetch(config.introspectionEndpoint, {
      method: 'POST',
      headers: {
        authorization: basicCredentials(config.clientId, config.clientSecret),
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
      signal: AbortSignal.timeout(config.introspectionTimeoutMs),
      redirect: 'error',
    });
  } catch (error) {
    const reason = (error as Error).name === 'TimeoutError' ? 'timed out' : 'could not be reached';
    throw new PassbookUnavailableError(`introspection ${reason}`);
  }
  // oidc-provider will not introspect a JWT-shaped token; Passbook issues none, so it is not ours.
  if (response.status === 400 && (await errorCode(response)) === 'unsupported_token_type') {
    return { active: false };
  }
  if (response.status !== 200) {
    // 401 here means the bank API's own credentials are wrong: a configuration error, not the caller's.
    throw new PassbookUnavailableError(`introspection answered HTTP ${response.status}`);
  }
  let answer: unknown;
  try {
    answer = await response.json();
  } catch {
    throw new PassbookUnavailableError('introspection answered something other than JSON');
  }
  // JSON that is not an object (null, a list) is no answer either; every member is checked later.
  if (!isJsonObject(answer)) {
    throw new PassbookUnavailableError('introspection answered something other than an object');
  }
  return answer;
}

/** The key a DPoP token is bound to; null for a Bearer token; undefined for any other binding. */
function bindingOf(answer: IntrospectionAnswer): string | null | undefined {
  const type = typeof answer.token_type === 'string' ? answer.token_type.toLowerCase() : undefined;
  if (type === 'bearer') return answer.cnf === undefined ? null : undefined;
  if (type !== 'dpop' || !isJsonObject(answer.cnf)) return undefined;
  const { jkt, ...others } = answer.cnf;
  return typeof jkt === 'string' && jkt !== '' && Object.keys(others).length === 0 ? jkt : undefined;
}

function isListOfStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string' && item.length > 0);
}

function isAuthorizationDetail(value: unknown): value is AuthorizationDetail {
  if (!isJsonObject(value)) return false;
  if (typeof value.type !== 'string' || value.type.length === 0) return false;
  return ['locations', 'actions'].every(
    (member) => value[member] === undefined || isListOfStrings(value[member]),
  );
}

/** All of them or none: one malformed detail means Passbook's answer cannot be read as approved. */
function authorizationDetailsFrom(value: unknown): readonly AuthorizationDetail[] {
  if (!Array.isArray(value) || !value.every(isAuthorizationDetail)) return [];
  return value;
}

/** A single audience, as Passbook issues them (a one-member list is the same audience). */
function audienceFrom(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return value[0];
  return undefined;
}

/**
 * Only a live access token of a customer opens the API, as Bearer or bound to a DPoP key: a
 * refresh token (no token_type), a client's own token (no sub) or one bound to anything else (a
 * certificate) is refused like an expired one.
 */
function accessTokenFrom(
  answer: IntrospectionAnswer,
  nowSeconds: number,
  presented: string,
): AccessToken | undefined {
  if (answer.active !== true) return undefined;
  const jkt = bindingOf(answer);
  if (jkt === undefined) return undefined;
  if (typeof answer.sub !== 'string' || typeof answer.client_id !== 'string') return undefined;
  if (typeof answer.exp !== 'number' || answer.exp <= nowSeconds) return undefined;
  const scope = typeof answer.scope === 'string' ? answer.scope : '';
  return {
    customerId: answer.sub,
    clientId: answer.client_id,
    scopes: new Set(scope.split(' ').filter(Boolean)),
    amr: Array.isArray(answer.amr)
      ? answer.amr.filter((value): value is string => typeof value === 'string')
      : [],
    acr: typeof answer.acr === 'string' ? answer.acr : undefined,
    jkt: jkt ?? undefined,
    audience: audienceFrom(answer.aud),
    authorizationDetails: authorizationDetailsFrom(answer.authorization_details),
    tokenSha256: createHash('sha256').update(presented).digest('hex'),
  };
}

export function createIntrospector(config: BankApiConfig): Introspect {
  return async (token) => {
    const answer = await askPassbook(config, token);
    if (answer.active === true && answer.iss !== config.issuer) {
      throw new PassbookUnavailableError('introspection answered for another issuer: check ISSUER');
    }
    return accessTokenFrom(answer, Math.floor(Date.now() / 1000), token);
  };
}
