import Router from '@koa/router';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Knex } from '../db/knex.ts';
import { ApiError } from './errors.ts';
import { listAccounts, type Account } from './ledger.ts';
import { formatAmount } from './money.ts';

/**
 * GET /consent/accounts: the accounts Passbook's payment consent screen offers the customer to pay
 * from. Only Passbook may ask, and only about the customer it names: it sends a short-lived JWT
 * (typ `account-lookup+jwt`, ES256) signed with its own signing key, which the bank API checks
 * against Passbook's published JWKS (`${issuer}/jwks`). No app's token is accepted here.
 */

const ACCOUNT_LOOKUP_JWT_TYPE = 'account-lookup+jwt';

/** The longest life Passbook may give a lookup token, in seconds. */
const MAX_LIFETIME_SECONDS = 60;

export interface AccountLookupVerifierOptions {
  /** Passbook's issuer identifier. */
  issuer: string;
  /** BANK_API_URL: the audience a lookup token must name. */
  audience: string;
  /** Passbook's keys; by default fetched (and cached by jose) from `${issuer}/jwks`. */
  keys?: JWTVerifyGetKey;
}

/** Checks a lookup token and answers the customer it asks about. */
export type AccountLookupVerifier = (token: string) => Promise<string>;

const REFUSED_DESCRIPTION = 'Send an account lookup token signed by Passbook.';
const REFUSED = new ApiError(401, 'invalid_token', REFUSED_DESCRIPTION, {
  headers: { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${REFUSED_DESCRIPTION}"` },
});

const PASSBOOK_UNAVAILABLE = new ApiError(
  503,
  'temporarily_unavailable',
  "The bank cannot read Passbook's keys right now. Try again shortly.",
  { headers: { 'Retry-After': '5' } },
);

// Passbook's JWKS could not be fetched: not the token's fault, and not worth a 401.
function isKeySetUnavailable(error: unknown): boolean {
  return (
    error instanceof joseErrors.JWKSTimeout ||
    (error instanceof joseErrors.JOSEError && error.code === 'ERR_JOSE_GENERIC') ||
    error instanceof TypeError
  );
}

export function accountLookupVerifier(options: AccountLookupVerifierOptions): AccountLookupVerifier {
  const keys = options.keys ?? createRemoteJWKSet(new URL(`${options.issuer}/jwks`));
  return async (token) => {
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: options.issuer,
        audience: options.audience,
        typ: ACCOUNT_LOOKUP_JWT_TYPE,
        algorithms: ['ES256'],
        requiredClaims: ['sub', 'iat', 'exp', 'jti'],
        maxTokenAge: MAX_LIFETIME_SECONDS,
      });
      const { sub, iat, exp, jti } = payload;
      if (
        typeof sub !== 'string' ||
        sub === '' ||
        typeof jti !== 'string' ||
        iat === undefined ||
        exp === undefined ||
        exp - iat > MAX_LIFETIME_SECONDS
      ) {
        throw REFUSED;
      }
      return sub;
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (isKeySetUnavailable(error)) throw PASSBOOK_UNAVAILABLE;
      throw REFUSED;
    }
  };
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~]+\.[A-Za-z0-9\-._~]+\.[A-Za-z0-9\-._~]+) *$/i;

function lookupJson(account: Account) {
  return {
    iban: account.iban,
    name: account.name,
    balance: { currency: account.currency, amount: formatAmount(account.balanceMinor) },
  };
}

export function consentAccountsRouter({
  knex,
  verify,
}: {
  knex: Knex;
  verify: AccountLookupVerifier;
}): Router {
  const router = new Router();
  router.get('/consent/accounts', async (ctx) => {
    const token = BEARER.exec(ctx.get('authorization'))?.[1];
    if (!token) throw REFUSED;
    const customerId = await verify(token);
    const accounts = await listAccounts(knex, customerId);
    ctx.body = { accounts: accounts.map(lookupJson) };
  });
  return router;
}
