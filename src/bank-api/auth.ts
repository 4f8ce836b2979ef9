import type { Context, Middleware } from 'koa';
import type { Logger } from '../service/kit.ts';
import { ApiError } from './errors.ts';
import { PassbookUnavailableError, type AccessToken, type Introspect } from './introspection.ts';

/**
 * RFC 6750 for the bank API: a Bearer token in the Authorization header and nowhere else,
 * checked at Passbook on every request, and answers a client library understands:
 * 401 with a bare `WWW-Authenticate: Bearer` when no token came, 401 invalid_token for a bad
 * one, 403 insufficient_scope naming the scope needed, 403 insufficient_user_authentication
 * (RFC 9470) when the customer signed in with one factor where two are needed, and 503 when
 * Passbook cannot say.
 */

export interface BankApiState {
  token: AccessToken;
}

// RFC 6750 §2.1: b64token. Longer than any token Passbook issues means it is not one of ours.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]{1,512}=*) *$/i;

function challenge(params: Record<string, string> = {}): string {
  const members = Object.entries(params).map(([name, value]) => `${name}="${value}"`);
  return members.length ? `Bearer ${members.join(', ')}` : 'Bearer';
}

const NO_TOKEN = new ApiError(401, 'unauthorized', 'Send an access token: Authorization: Bearer <token>.', {
  headers: { 'WWW-Authenticate': challenge() },
});

const INVALID_TOKEN_DESCRIPTION = 'The access token is invalid, expired or revoked.';
const INVALID_TOKEN = new ApiError(401, 'invalid_token', INVALID_TOKEN_DESCRIPTION, {
  headers: {
    'WWW-Authenticate': challenge({ error: 'invalid_token', error_description: INVALID_TOKEN_DESCRIPTION }),
  },
});

const TOKEN_IN_URL_DESCRIPTION = 'Access tokens are accepted only in the Authorization header.';
const TOKEN_IN_URL = new ApiError(400, 'invalid_request', TOKEN_IN_URL_DESCRIPTION, {
  headers: {
    'WWW-Authenticate': challenge({ error: 'invalid_request', error_description: TOKEN_IN_URL_DESCRIPTION }),
  },
});

const UNAVAILABLE = new ApiError(
  503,
  'temporarily_unavailable',
  'The bank cannot check access tokens right now. Try again shortly.',
  { headers: { 'Retry-After': '5' } },
);

export function insufficientScope(scope: string): ApiError {
  const description = `This needs the ${scope} scope.`;
  return new ApiError(403, 'insufficient_scope', description, {
    headers: {
      'WWW-Authenticate': challenge({ error: 'insufficient_scope', scope, error_description: description }),
    },
    extra: { scope },
  });
}

/** The level Passbook names for two factors (its discovery's acr_values_supported). */
const TWO_FACTORS_ACR = 'urn:passbook:acr:two-factors';

const ONE_FACTOR_DESCRIPTION = 'This needs a sign-in with two factors; ask the customer to sign in again.';
// RFC 9470: the challenge says what would do, so the app can ask Passbook for exactly that.
const ONE_FACTOR = new ApiError(403, 'insufficient_user_authentication', ONE_FACTOR_DESCRIPTION, {
  headers: {
    'WWW-Authenticate': challenge({
      error: 'insufficient_user_authentication',
      error_description: ONE_FACTOR_DESCRIPTION,
      acr_values: TWO_FACTORS_ACR,
    }),
  },
});

/** A second line of defence: Passbook already asks for two factors before issuing such a token. */
export function requireTwoFactors(token: AccessToken): void {
  if (!(token.amr.includes('mfa') || token.acr === TWO_FACTORS_ACR)) throw ONE_FACTOR;
}

/** The token from `Authorization: Bearer …`; a token anywhere in the URL is refused outright. */
function bearerToken(ctx: Context): string {
  if (ctx.query.access_token !== undefined) throw TOKEN_IN_URL;
  const header = ctx.get('authorization');
  if (!header || !/^bearer( |$)/i.test(header)) throw NO_TOKEN;
  const match = BEARER.exec(header);
  if (!match?.[1]) throw INVALID_TOKEN;
  return match[1];
}

export interface Guard {
  /**
   * Lets the request through only with a live access token that carries `scope`; with
   * `twoFactors`, only when the customer signed in with two factors as well (a second line of
   * defence: Passbook already asks for them before granting such a scope).
   */
  requireScope(scope: string, options?: { twoFactors?: boolean }): Middleware<BankApiState>;
  /** Any live access token; the route itself decides what the token's details allow. */
  requireToken(): Middleware<BankApiState>;
}

export function createGuard(introspect: Introspect, log: Logger): Guard {
  async function check(ctx: Context): Promise<AccessToken> {
    const presented = bearerToken(ctx);
    try {
      const token = await introspect(presented);
      if (!token) throw INVALID_TOKEN;
      return token;
    } catch (error) {
      if (!(error instanceof PassbookUnavailableError)) throw error;
      log.error({ reason: error.message }, 'cannot check access tokens at Passbook; refusing requests');
      throw UNAVAILABLE;
    }
  }

  return {
    requireScope(scope, options = {}) {
      return async (ctx, next) => {
        const token = await check(ctx);
        if (!token.scopes.has(scope)) throw insufficientScope(scope);
        if (options.twoFactors) requireTwoFactors(token);
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
