import type { Context, Middleware } from 'koa';
import type { Knex } from '../db/knex.ts';
import type { Logger } from '../service/kit.ts';
import { DPOP_ALGORITHMS, InvalidDpopProof, checkProof, recordProof, type AcceptedProof } from './dpop.ts';
import { ApiError } from './errors.ts';
import { PassbookUnavailableError, type AccessToken, type Introspect } from './introspection.ts';

/**
 * RFC 6750 and RFC 9449 §7 for the bank API: an access token in the Authorization header and
 * nowhere else, as a Bearer token or, when it is bound to a key, as a DPoP token with a proof from
 * that key (src/bank-api/dpop.ts); a bound token is never taken as Bearer. Every token is checked at
 * Passbook on every request, and the answers are ones a client library understands: 401 with bare
 * challenges when no token came, 401 invalid_token for a bad one, 401 invalid_dpop_proof for a bad
 * proof, 403 insufficient_scope naming the scope needed, 403 insufficient_user_authentication
 * (RFC 9470) when the customer signed in with one factor where two are needed, and 503 when
 * Passbook cannot say.
 */

export interface BankApiState {
  token: AccessToken;
}

export type Scheme = 'Bearer' | 'DPoP';

// RFC 6750 §2.1: b64token (RFC 9449 §7.1 uses the same token68 for DPoP). Longer than any token
// Passbook issues means it is not one of ours.
const AUTHORIZATION = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]{1,512}=*) *$/i;
const SCHEME = /^(bearer|dpop)( |$)/i;

function challenge(scheme: Scheme, params: Record<string, string> = {}): string {
  const all = scheme === 'DPoP' ? { ...params, algs: DPOP_ALGORITHMS.join(' ') } : params;
  const members = Object.entries(all).map(([name, value]) => `${name}="${value}"`);
  return members.length ? `${scheme} ${members.join(', ')}` : scheme;
}

function refusal(status: number, code: string, description: string, scheme: Scheme): ApiError {
  return new ApiError(status, code, description, {
    headers: { 'WWW-Authenticate': challenge(scheme, { error: code, error_description: description }) },
  });
}

const NO_TOKEN = new ApiError(
  401,
  'unauthorized',
  'Send an access token: Authorization: Bearer <token>, or DPoP <token> with a DPoP proof.',
  { headers: { 'WWW-Authenticate': [challenge('Bearer'), challenge('DPoP')] } },
);

const INVALID_TOKEN_DESCRIPTION = 'The access token is invalid, expired or revoked.';
const INVALID_TOKEN = {
  Bearer: refusal(401, 'invalid_token', INVALID_TOKEN_DESCRIPTION, 'Bearer'),
  DPoP: refusal(401, 'invalid_token', INVALID_TOKEN_DESCRIPTION, 'DPoP'),
};

const BOUND_AS_BEARER = refusal(
  401,
  'invalid_token',
  'This access token is bound to a DPoP key: send it as Authorization: DPoP <token>, with a DPoP proof.',
  'DPoP',
);

const UNBOUND_AS_DPOP = refusal(
  401,
  'invalid_token',
  'This access token is not bound to a key: send it as Authorization: Bearer <token>.',
  'Bearer',
);

const OTHER_KEY = refusal(
  401,
  'invalid_token',
  'The DPoP proof is signed with another key than the one the access token is bound to.',
  'DPoP',
);

function invalidProof(description: string): ApiError {
  return refusal(401, 'invalid_dpop_proof', description, 'DPoP');
}

const NOT_ONE_PROOF = invalidProof('Send exactly one DPoP header with a DPoP access token.');
const REPLAYED_PROOF = invalidProof('The DPoP proof has been used before: make a new one for each request.');

const TOKEN_IN_URL = refusal(
  400,
  'invalid_request',
  'Access tokens are accepted only in the Authorization header.',
  'Bearer',
);

const UNAVAILABLE = new ApiError(
  503,
  'temporarily_unavailable',
  'The bank cannot check access tokens right now. Try again shortly.',
  { headers: { 'Retry-After': '5' } },
);

export function insufficientScope(scope: string, scheme: Scheme): ApiError {
  const description = `This needs the ${scope} scope.`;
  return new ApiError(403, 'insufficient_scope', description, {
    headers: {
      'WWW-Authenticate': challenge(scheme, {
        error: 'insufficient_scope',
        scope,
        error_description: description,
      }),
    },
    extra: { scope },
  });
}

/** The level Passbook names for two factors (its discovery's acr_values_supported). */
const TWO_FACTORS_ACR = 'urn:passbook:acr:two-factors';

const ONE_FACTOR_DESCRIPTION = 'This needs a sign-in with two factors; ask the customer to sign in again.';

// RFC 9470: the challenge says what would do, so the app can ask Passbook for exactly that.
function oneFactor(scheme: Scheme): ApiError {
  return new ApiError(403, 'insufficient_user_authentication', ONE_FACTOR_DESCRIPTION, {
    headers: {
      'WWW-Authenticate': challenge(scheme, {
        error: 'insufficient_user_authentication',
        error_description: ONE_FACTOR_DESCRIPTION,
        acr_values: TWO_FACTORS_ACR,
      }),
    },
  });
}

/** The scheme a token is presented with, and its challenges named in: DPoP for a bound token. */
export function schemeOf(token: AccessToken): Scheme {
  return token.jkt === undefined ? 'Bearer' : 'DPoP';
}

/** A second line of defence: Passbook already asks for two factors before issuing such a token. */
export function requireTwoFactors(token: AccessToken): void {
  if (!(token.amr.includes('mfa') || token.acr === TWO_FACTORS_ACR)) throw oneFactor(schemeOf(token));
}

interface PresentedToken {
  scheme: Scheme;
  token: string;
}

/** The token from `Authorization: Bearer …` or `DPoP …`; a token anywhere in the URL is refused outright. */
function presentedToken(ctx: Context): PresentedToken {
  if (ctx.query.access_token !== undefined) throw TOKEN_IN_URL;
  const header = ctx.get('authorization');
  const named = SCHEME.exec(header)?.[1];
  if (!named) throw NO_TOKEN;
  const scheme: Scheme = named.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
  const match = AUTHORIZATION.exec(header);
  if (!match?.[2]) throw INVALID_TOKEN[scheme];
  return { scheme, token: match[2] };
}

/** Where the bank API checks DPoP proofs against: its own URL as apps call it, and its replay records. */
export interface ProofContext {
  knex: Knex;
  /** BANK_API_URL: a proof's htu is this and the path. */
  publicUrl: string;
}

/** The request's one DPoP proof, checked against the request and the token it comes with. */
async function proofOf(ctx: Context, accessToken: string, proofs: ProofContext): Promise<AcceptedProof> {
  const headers = ctx.req.headersDistinct.dpop ?? [];
  const [proof] = headers;
  if (headers.length !== 1 || !proof) throw NOT_ONE_PROOF;
  try {
    return await checkProof(proof, {
      method: ctx.method,
      url: `${proofs.publicUrl}${ctx.path}`,
      accessToken,
    });
  } catch (error) {
    if (error instanceof InvalidDpopProof) throw invalidProof(error.message);
    throw error;
  }
}

export interface Guard {
  /** Lets the request through only with a live access token that carries `scope`. */
  requireScope(scope: string): Middleware<BankApiState>;
  /** Any live access token; the route itself decides what the token's details allow. */
  requireToken(): Middleware<BankApiState>;
}

export function createGuard(introspect: Introspect, log: Logger, proofs: ProofContext): Guard {
  async function introspected(token: string): Promise<AccessToken | undefined> {
    try {
      return await introspect(token);
    } catch (error) {
      if (!(error instanceof PassbookUnavailableError)) throw error;
      log.error({ reason: error.message }, 'cannot check access tokens at Passbook; refusing requests');
      throw UNAVAILABLE;
    }
  }

  async function check(ctx: Context): Promise<AccessToken> {
    const { scheme, token: presented } = presentedToken(ctx);
    // A proof is checked before Passbook is asked: one that cannot hold costs Passbook nothing.
    const proof = scheme === 'DPoP' ? await proofOf(ctx, presented, proofs) : undefined;
    const token = await introspected(presented);
    if (!token) throw INVALID_TOKEN[scheme];
    if (token.jkt === undefined) {
      if (proof) throw UNBOUND_AS_DPOP;
      return token;
    }
    if (!proof) throw BOUND_AS_BEARER;
    if (proof.jkt !== token.jkt) throw OTHER_KEY;
    if (!(await recordProof(proofs.knex, proof))) throw REPLAYED_PROOF;
    return token;
  }

  return {
    requireScope(scope) {
      return async (ctx, next) => {
        const token = await check(ctx);
        if (!token.scopes.has(scope)) throw insufficientScope(scope, schemeOf(token));
        ctx.state.token = token;
        await next();
      };
    },
    requireToken() {
      return async (ctx, next) => {
        ctx.state.token = await check(ctx);
        await next();
      };
    },
  };
}
