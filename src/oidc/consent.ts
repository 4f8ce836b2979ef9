import { interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import { latestGrantId } from './storage/grants-and-sessions.ts';
import { SCOPE_CATALOGUE } from './scopes.ts';
import { restoreSessionGrantAfterwards } from './engine-internals.ts';
import { accountInformationOf, holdsPayment } from './account-information.ts';

/**
 * When the bank asks the customer for consent, and what a consent given once covers later.
 *
 * - Consent is remembered per customer and app: a new sign-in of the same app skips the screen
 *   for what was allowed before.
 * - Each sign-in's authorization gets a grant of its own (a phone and a laptop each hold one),
 *   started from what the customer allowed last time, the accounts they chose included. What an app does with one device's tokens
 *   (revoking them on "Disconnect", or a replayed refresh token that cuts off that chain) ends
 *   that device's access only. The customer's own Revoke on the account pages ends them all.
 * - A scope marked `alwaysAsk` in the catalogue (none is, now that payments are authorization
 *   details, which oidc-provider asks consent for on every request) would be asked for every
 *   time: a remembered consent never covers it, and `prompt=none` answers `consent_required`.
 * - Every payment (`authorization_details`) is its own consent: oidc-provider raises the consent
 *   prompt for each one, and its approval is a fresh grant that holds that payment and nothing
 *   remembered; no later request extends it.
 */

const ALWAYS_ASK = new Set(SCOPE_CATALOGUE.filter((entry) => entry.alwaysAsk).map((entry) => entry.scope));

function requestedScopes(ctx: KoaContextWithOIDC): string[] {
  const scope = ctx.oidc.params?.scope;
  return typeof scope === 'string' ? scope.split(' ') : [];
}

/** The requested scopes that need the customer's yes on every request. */
function alwaysAskedScopes(scopes: Iterable<string>): string[] {
  return [...scopes].filter((scope) => ALWAYS_ASK.has(scope));
}

/** Raises the consent prompt of an interaction policy for always-asked scopes too. */
export function askForAlwaysAskedScopes(policy: interactionPolicy.DefaultPolicy): void {
  const consent = policy.get('consent');
  if (!consent) throw new Error('oidc-provider no longer has a consent prompt');
  consent.checks.add(
    new interactionPolicy.Check(
      'always_asked_scope_requested',
      'a scope that needs consent on every request was requested',
      'consent_required',
      // Once the customer has answered this very request's screen, the result carries the consent.
      (ctx) => alwaysAskedScopes(requestedScopes(ctx)).length > 0 && !ctx.oidc.result?.consent,
      (ctx) => ({ alwaysAskedScopes: alwaysAskedScopes(requestedScopes(ctx)) }),
    ),
  );
}

/** A rich authorization request: the only type offered is a payment (authorization-details.ts). */
function asksForPayment(ctx: KoaContextWithOIDC): boolean {
  return ctx.oidc.params?.authorization_details !== undefined;
}

/**
 * oidc-provider's `loadExistingGrant`: the grant this sign-in already uses for the app, or else a
 * new one for it that carries what the customer allowed the app last time (the newest live grant).
 */
export function rememberedConsent(knex: Knex): NonNullable<Configuration['loadExistingGrant']> {
  return async (ctx) => {
    const { client, session, result, provider } = ctx.oidc;
    if (!client || !session?.accountId) return undefined;
    // A payment is approved on a grant of its own, made by its consent screen: none before it.
    if (asksForPayment(ctx)) {
      const approved = result?.consent?.grantId;
      if (!approved) return undefined;
      // The session keeps the grant it had: the app's ordinary tokens in this browser live on.
      restoreSessionGrantAfterwards(ctx, session.grantIdFor(client.clientId));
      return provider.Grant.find(approved);
    }
    const currentId = result?.consent?.grantId ?? session.grantIdFor(client.clientId);
    const current = currentId ? await provider.Grant.find(currentId) : undefined;
    // An earlier payment's grant is never extended: its details would ride along.
    if (current && !holdsPayment(current.rar)) return current;
    const rememberedId = await latestGrantId(knex, session.accountId, client.clientId);
    const remembered = rememberedId ? await provider.Grant.find(rememberedId) : undefined;
    if (!remembered) return undefined;
    const grant = new provider.Grant({ accountId: session.accountId, clientId: client.clientId });
    const scope = remembered.getOIDCScope();
    if (scope) grant.addOIDCScope(scope);
    const claims = remembered.getOIDCClaims();
    if (claims.length) grant.addOIDCClaims(claims);
    const accounts = accountInformationOf(remembered.rar);
    if (accounts) grant.rar = accounts;
    await grant.save();
    return grant;
  };
}
