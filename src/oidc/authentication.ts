import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { scopesNeedingTwoFactors } from './scopes.ts';

/**
 * How strongly the customer must have proved who they are, and what apps are told about it.
 *
 * - Two levels, published in discovery as `acr_values_supported`: a password alone, and two
 *   factors (a password and a code from an authenticator app, or a passkey).
 * - ID tokens always carry `amr` (RFC 8176) and, when the app asks, `acr`.
 * - An app asking for two factors as an essential `acr` claim gets them or
 *   `unmet_authentication_requirements`; `acr_values` is voluntary, as OpenID Connect says: the
 *   customer is asked for the second factor if they have one, and the ID token says what happened.
 * - Scopes that move money (`needsTwoFactors` in the catalogue), and every payment request
 *   (`authorization_details`), need two factors used in this session within
 *   `FRESH_TWO_FACTORS_SECONDS`, whatever the app asked: a one-factor or older session is asked
 *   for the code first, without typing the password again.
 */

const ACR = {
  password: 'urn:passbook:acr:password',
  twoFactors: 'urn:passbook:acr:two-factors',
} as const;

export const ACR_VALUES: readonly string[] = [ACR.password, ACR.twoFactors];

const FRESH_TWO_FACTORS_SECONDS = 5 * 60;

/** The login prompt's reason when the session needs (another) second factor. */
export const TWO_FACTORS_REASON = 'two_factors_required';

export function acrFor(amr: readonly string[]): string {
  return amr.includes('mfa') ? ACR.twoFactors : ACR.password;
}

/** Which second factor a sign-in used, as the activity log names it; never a secret. */
export type SecondFactor = 'passkey' | 'authenticator_app' | 'recovery_code';

/**
 * The interaction result member that says a recovery code was the second factor. RFC 8176 has
 * no word for one (a recovery code is an `otp` too), so amr alone cannot tell it from an
 * authenticator app's code.
 */
export const USED_RECOVERY_CODE = 'usedRecoveryCode';

/** The second factor behind an amr (RFC 8176), or undefined for a password alone. */
export function secondFactorOf(amr: readonly string[], usedRecoveryCode = false): SecondFactor | undefined {
  if (amr.includes('hwk') || amr.includes('swk')) return 'passkey';
  if (amr.includes('otp')) return usedRecoveryCode ? 'recovery_code' : 'authenticator_app';
  return undefined;
}

export type HasSecondFactor = (customerId: string) => Promise<boolean>;

interface SessionFacts {
  amr?: string[] | undefined;
  loginTs?: number | undefined;
}

function usedTwoFactors(session: SessionFacts, withinSeconds?: number, now = Date.now()): boolean {
  if (!session.amr?.includes('mfa')) return false;
  if (withinSeconds === undefined) return true;
  return session.loginTs !== undefined && Math.floor(now / 1000) - session.loginTs <= withinSeconds;
}

function requestedScopes(ctx: KoaContextWithOIDC): string[] {
  const scope = ctx.oidc.params?.scope;
  return typeof scope === 'string' ? scope.split(' ') : [];
}

/** What this request needs of the session: nothing, two factors, or two factors just now. */
type Requirement = 'none' | 'two_factors' | 'fresh_two_factors' | 'two_factors_if_possible';

/** A rich authorization request: the only type offered is a payment (authorization-details.ts). */
function asksForPayment(ctx: KoaContextWithOIDC): boolean {
  return ctx.oidc.params?.authorization_details !== undefined;
}

function requirement(ctx: KoaContextWithOIDC): Requirement {
  if (scopesNeedingTwoFactors(requestedScopes(ctx)).length > 0 || asksForPayment(ctx)) {
    return 'fresh_two_factors';
  }
  const acr = ctx.oidc.claims.id_token?.acr;
  const asked = acr?.value !== undefined ? [acr.value] : (acr?.values ?? []);
  if (!asked.includes(ACR.twoFactors)) return 'none';
  // Essential: ACR.twoFactors alone was asked for; voluntary otherwise (acr_values).
  return acr?.essential === true && asked.every((value) => value === ACR.twoFactors)
    ? 'two_factors'
    : 'two_factors_if_possible';
}

/** Whether the request may go on with this session, or the customer must give a second factor. */
async function needsSecondFactor(
  ctx: KoaContextWithOIDC,
  hasSecondFactor: HasSecondFactor,
): Promise<boolean> {
  const { session } = ctx.oidc;
  if (!session?.accountId) return false; // the login prompt's no_session check asks for sign-in first
  switch (requirement(ctx)) {
    case 'none':
      return false;
    case 'fresh_two_factors':
      return !usedTwoFactors(session, FRESH_TWO_FACTORS_SECONDS);
    case 'two_factors':
      return !usedTwoFactors(session);
    case 'two_factors_if_possible':
      return !usedTwoFactors(session) && (await hasSecondFactor(session.accountId));
  }
}

/** Whether the customer must have two factors and cannot be given any lesser sign-in. */
function twoFactorsAreRequired(ctx: KoaContextWithOIDC): boolean {
  const needed = requirement(ctx);
  return needed === 'two_factors' || needed === 'fresh_two_factors';
}

/** Adds the two-factor requirement to the login prompt of an interaction policy. */
export function requireTwoFactorsWhereNeeded(
  policy: interactionPolicy.DefaultPolicy,
  hasSecondFactor: HasSecondFactor,
): void {
  const login = policy.get('login');
  if (!login) throw new Error('oidc-provider no longer has a login prompt');
  login.checks.add(
    new interactionPolicy.Check(
      TWO_FACTORS_REASON,
      'a second factor is required for this request',
      'interaction_required',
      (ctx) => needsSecondFactor(ctx, hasSecondFactor),
      (ctx) => ({ twoFactorsRequired: twoFactorsAreRequired(ctx) }),
    ),
  );
}
