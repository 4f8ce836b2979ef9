import Provider, {
  errors,
  interactionPolicy,
  type Configuration,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import type { JWK } from 'jose';
import type { Config, Lifetimes } from '../config.ts';
import type { DataCipher } from '../crypto/data-cipher.ts';
import type { Knex } from '../db/knex.ts';
import { findCustomer, standardClaims } from '../customers/customers.ts';
import type { CustomerCopies } from '../customers/customer-copies.ts';
import { renderErrorPage, renderPage } from '../http/views.ts';
import { RESOURCE_SERVER_METADATA } from '../clients/clients.ts';
import { postgresAdapterFactory } from './storage/adapter.ts';
import type { LiveTokenCache } from './storage/live-tokens.ts';
import { askForAlwaysAskedScopes, rememberedConsent } from './consent.ts';
import { ACR_VALUES, requireTwoFactorsWhereNeeded, type HasSecondFactor } from './authentication.ts';
import {
  answerUnavailableDatabase,
  compareSecretsAsDigests,
  detectSimultaneousReplays,
  restoreSessionGrants,
} from './engine-internals.ts';
import { clientSecretGuard } from '../sign-in/throttle.ts';
import {
  backchannelLogoutPolicy,
  logoutDeliveryFetch,
  refuseUndeliverableLogoutUris,
} from './backchannel-logout.ts';
import { SUPPORTED_SCOPES, claimsByScope } from './scopes.ts';
import { PAYMENT_TOKEN_TTL, authorizationDetailsPolicy, bankApiResource } from './authorization-details.ts';
import { holdsPayment } from './account-information.ts';
import { appMarks, codeLifetime, fapiProfile, rotatesRefreshTokens } from './fapi.ts';
import { cookieSignatures } from '../http/cookie-signatures.ts';

/**
 * The bank's authorization policy, in one place: what it supports, how long everything lives,
 * who may introspect or revoke what, and which screens the customer sees.
 */

export interface ProviderDependencies {
  config: Config;
  knex: Knex;
  signingKeys: JWK[];
  cookieKeys: string[];
  /**
   * Where sessions, codes, tokens and grants are kept: PostgreSQL. Only the benchmark asks for
   * oidc-provider's in-memory development default, as the ceiling that storage is measured against.
   */
  storage?: 'postgres' | 'oidc-provider-memory';
  /** Whether a customer has a second factor set up (two-step verification or a passkey). */
  hasSecondFactor: HasSecondFactor;
  /** What DPoP nonces are made from: the same 32 bytes on every node (dpopNonceSecret). */
  dpopNonceSecret: Buffer;
  /** The process's copies of live access tokens (storage/live-tokens.ts); none without it. */
  liveTokens?: LiveTokenCache;
  /** The process's copies of customers for token requests (customers/customer-copies.ts). */
  customerCopies?: CustomerCopies;
}

/**
 * DPOP_NONCE_SECRET, or else a secret derived from the data encryption key: either way every node
 * that shares the configuration hands out nonces that every other node accepts.
 */
export function dpopNonceSecret(config: Config, cipher: DataCipher): Buffer {
  return config.dpopNonceSecret ?? cipher.derivedSecret('passbook dpop nonce');
}

/** What an app may sign a DPoP proof with; the bank API accepts the same (src/bank-api/dpop.ts). */
const DPOP_SIGNING_ALGORITHMS = ['ES256', 'PS256', 'EdDSA'] as const;

const ID_TOKEN_TTL = 60 * 60;
/** oidc-provider's own, fixed lifetime of logout tokens (and of the other JWTs it signs on the fly). */
const LOGOUT_TOKEN_TTL = 120;

/** Seconds the longest-lived thing Passbook signs stays valid: a key may be retired only after it. */
export const LONGEST_SIGNED_LIFETIME = Math.max(ID_TOKEN_TTL, LOGOUT_TOKEN_TTL);

/** oidc-provider's routes that a customer's browser opens: their errors are pages, not JSON. */
const BROWSER_ROUTES: ReadonlySet<string> = new Set([
  'authorization',
  'resume',
  'end_session',
  'end_session_confirm',
  'end_session_success',
]);

/**
 * Whether an error on this engine route is answered with the bank's error page. oidc-provider
 * renders HTML for any caller that prefers it; only the pages a customer's browser lands on get
 * the page, every endpoint an app calls answers RFC JSON.
 */
export function answersErrorsWithPage(route: string | undefined): boolean {
  return route !== undefined && BROWSER_ROUTES.has(route);
}

/** oidc-provider's documented `expiresWithSession` option, which @types/oidc-provider leaves out. */
interface SessionBinding {
  expiresWithSession: (ctx: KoaContextWithOIDC, code: { scopes: Set<string> }) => boolean;
}

interface SessionTimes {
  loginTs?: number | undefined;
}

/**
 * Seconds a bank session may live from now: the idle timeout, cut short by the absolute limit
 * counted from sign-in. The session is saved again on every use, which slides the idle window.
 */
export function sessionTtl(lifetimes: Lifetimes, session: SessionTimes, now = Date.now()): number {
  const nowSeconds = Math.floor(now / 1000);
  const signedInAt = session.loginTs ?? nowSeconds;
  const untilMaxAge = signedInAt + lifetimes.sessionMaxAge - nowSeconds;
  return Math.max(1, Math.min(lifetimes.sessionIdleTimeout, untilMaxAge));
}

function lifetimesPolicy(lifetimes: Lifetimes): Configuration['ttl'] {
  return {
    // A payment token lives as long as its resource server says (authorization-details.ts).
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? lifetimes.accessToken,
    // At most 60 seconds for an app of the FAPI 2.0 profile (fapi.ts).
    AuthorizationCode: codeLifetime(lifetimes.authorizationCode),
    IdToken: ID_TOKEN_TTL,
    Interaction: lifetimes.interaction,
    Session: (_ctx, session) => sessionTtl(lifetimes, session),
    // A grant outlives every refresh token issued under it, or refresh tokens would die early. A
    // payment's grant lives as long as its code and then its token can, and no longer.
    Grant: (_ctx, grant) =>
      holdsPayment(grant.rar)
        ? lifetimes.authorizationCode + PAYMENT_TOKEN_TTL
        : lifetimes.refreshTokenMaxAge,
    // Sliding: each rotation gets the full window again, but never past the cap from first sign-in.
    RefreshToken(_ctx, token) {
      const now = Math.floor(Date.now() / 1000);
      const firstIssuedAt = token.iiat ?? now;
      const remaining = firstIssuedAt + lifetimes.refreshTokenMaxAge - now;
      return Math.max(1, Math.min(lifetimes.refreshToken, remaining));
    },
  };
}

function accountFinder(knex: Knex, customerCopies?: CustomerCopies): Configuration['findAccount'] {
  return async (_ctx, sub) => {
    const customer = await answerUnavailableDatabase(() => findCustomer(knex, sub, customerCopies));
    if (!customer) return undefined;
    return { accountId: customer.id, claims: () => standardClaims(customer) };
  };
}

function isConfidential(clientAuthMethod: string | undefined): boolean {
  return clientAuthMethod !== undefined && clientAuthMethod !== 'none';
}

/** The acr and amr of the sign-in behind the code or refresh token an access token is issued for. */
function authenticationOf(ctx: KoaContextWithOIDC | undefined): { acr?: string; amr?: string[] } {
  // A token minted outside a request (an operator's script) carries no sign-in.
  const source = ctx?.oidc.entities.AuthorizationCode ?? ctx?.oidc.entities.RefreshToken;
  if (!source) return {};
  return {
    ...(typeof source.acr === 'string' ? { acr: source.acr } : {}),
    ...(Array.isArray(source.amr) ? { amr: source.amr.filter((value) => typeof value === 'string') } : {}),
  };
}

/**
 * oidc-provider's prompts, plus the bank's: always-asked scopes raise the consent screen every
 * time (consent.ts), and two factors are asked for where needed (authentication.ts).
 */
function bankInteractionPolicy(hasSecondFactor: HasSecondFactor): interactionPolicy.DefaultPolicy {
  const policy = interactionPolicy.base();
  askForAlwaysAskedScopes(policy);
  requireTwoFactorsWhereNeeded(policy, hasSecondFactor);
  return policy;
}

export function createProvider({
  config,
  knex,
  signingKeys,
  cookieKeys,
  storage = 'postgres',
  hasSecondFactor,
  dpopNonceSecret: nonceSecret,
  liveTokens,
  customerCopies,
}: ProviderDependencies): Provider {
  const existingGrant = rememberedConsent(knex);
  const configuration: Configuration & SessionBinding = {
    ...(storage === 'postgres' ? { adapter: postgresAdapterFactory(knex, liveTokens) } : {}),
    findAccount: accountFinder(knex, customerCopies),
    jwks: { keys: signingKeys },
    cookies: {
      keys: cookieSignatures(cookieKeys),
      names: { session: 'passbook_session', interaction: 'passbook_interaction', resume: 'passbook_resume' },
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },

    scopes: [...SUPPORTED_SCOPES],
    claims: claimsByScope(),
    // Two levels of assurance (authentication.ts); `acr` is in the ID token when the app asks.
    acrValues: [...ACR_VALUES],
    // The bank API learns how the customer signed in from introspection (RFC 9470 step-up).
    extraTokenClaims: (ctx) => authenticationOf(ctx),
    responseTypes: ['code'],
    // PKCE with S256 (the only method offered) for every client, confidential ones included.
    pkce: { required: () => true },
    // The redirect_uri is always sent and must match a registered one exactly.
    allowOmittingSingleRegisteredRedirectUri: false,
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: 'RS256',
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      // Apps always learn when the customer last typed the password (for their own step-up rules).
      require_auth_time: true,
      // No ordinary app may ask for a payment: only an app of the FAPI 2.0 profile, whose tokens
      // are bound to its key, is registered for payment_initiation (src/clients/clients.ts).
      authorization_details_types: [],
    },
    // Passbook's marks on an app: resource server, FAPI 2.0 profile (checked on every load, fapi.ts).
    extraClientMetadata: appMarks(),
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      // Asymmetric algorithms an app's DPoP key may use: FAPI 2.0's three, RSA keys included.
      dPoPSigningAlgValues: [...DPOP_SIGNING_ALGORITHMS],
    },
    ttl: lifetimesPolicy(config.lifetimes),

    // Consent is remembered per customer and app, each sign-in gets a grant of its own, and
    // always-asked scopes (payments) are asked for every time: see consent.ts.
    loadExistingGrant: (ctx) => answerUnavailableDatabase(async () => existingGrant(ctx)),
    // Which revocations also forget the consent (the Grant). Every one of them ends all codes and
    // tokens under the grant. Signing out, and an app revoking an access token, keep the consent;
    // an app revoking its refresh token ("disconnect"), or a code or refresh token replayed, end it.
    revokeGrantPolicy: (ctx) =>
      !(
        ctx.oidc.route === 'end_session_confirm' ||
        (ctx.oidc.route === 'revocation' && ctx.oidc.entities.AccessToken)
      ),

    // Tokens without offline access end with the bank session, as the engine does by default,
    // except a payment's: the next authorization in the session (another payment, say) would end
    // it before the app could book it. It lives five minutes and ends with its grant.
    expiresWithSession: (ctx, code) =>
      !code.scopes.has('offline_access') && ctx.oidc.params?.authorization_details === undefined,

    // Every refresh of an ordinary app rotates; a rotated-out token presented again revokes the
    // whole grant. A FAPI 2.0 app's refresh token is bound to its client authentication and never
    // rotates.
    rotateRefreshToken: rotatesRefreshTokens,
    // A payment's token is for that payment only: nothing outlives it to make another.
    issueRefreshToken: (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') &&
      code.scopes.has('offline_access') &&
      !holdsPayment(code.rar),

    // Every feature is chosen here on purpose, including those oidc-provider 9 turns on by itself:
    // discovery advertises exactly this list (test/conformance/discovery-jwks.test.ts pins it).
    features: {
      devInteractions: { enabled: false },
      // The FAPI 2.0 Security Profile for the apps registered with it, none for the others (fapi.ts).
      fapi: fapiProfile(),
      // On so that an app can ask for two factors as an essential acr claim.
      claimsParameter: { enabled: true },
      // Every app may bind its tokens to a key of its own (RFC 9449) by sending DPoP proofs; one
      // that sends none gets Bearer tokens as before. The bank API verifies the proofs.
      dPoP: {
        enabled: true,
        // The same on every node, so a nonce from one is good at all (DPOP_NONCE_SECRET).
        nonceSecret,
        // Every proof carries a nonce Passbook handed out: freshness is Passbook's clock, not the
        // app's `iat` (a nonce lives 1 to 3 minutes); the first proof is answered use_dpop_nonce.
        requireNonce: () => true,
        // A proof is accepted once (its jti is kept, src/oidc/storage/adapter.ts).
        allowReplay: false,
      },
      // The bank API is the one resource (RFC 8707): payment tokens name it as their audience.
      resourceIndicators: bankApiResource(config.bankApiUrl),
      // Payments ask for exactly what they pay (RFC 9396 payment_initiation, the one type offered):
      // checked strictly, approved on a consent screen of their own (authorization-details.ts).
      richAuthorizationRequests: authorizationDetailsPolicy({
        maxAmount: config.paymentMaxAmount,
        bankApiUrl: config.bankApiUrl,
      }),
      userinfo: { enabled: true },
      revocation: {
        enabled: true,
        // An app may revoke only its own tokens; another app's token is refused and left alive.
        allowedPolicy: (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true;
          if (!isConfidential(client.clientAuthMethod)) return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      introspection: {
        enabled: true,
        // Only authenticated clients introspect: the bank's APIs any token, an app only its own.
        allowedPolicy: (_ctx, client, token) =>
          isConfidential(client.clientAuthMethod) &&
          (client[RESOURCE_SERVER_METADATA] === true || token.clientId === client.clientId),
      },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => renderPage(ctx, 'logout', { title: 'Sign out', form }),
        postLogoutSuccessSource: (ctx) =>
          renderPage(ctx, 'signed-out', {
            title: 'Signed out',
            clientName: ctx.oidc.client?.clientName,
          }),
      },
      backchannelLogout: { enabled: true },
    },
    // Logout tokens go out under the bank's delivery policy (src/oidc/backchannel-logout.ts).
    fetch: logoutDeliveryFetch(backchannelLogoutPolicy(config)),

    interactions: {
      policy: bankInteractionPolicy(hasSecondFactor),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // Cross-origin calls only from an app's own registered origins (browser-based public apps).
    clientBasedCORS: (_ctx, origin, client) =>
      client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false,
    // The bank's error page or RFC JSON, by route (answersErrorsWithPage).
    renderError: (ctx: KoaContextWithOIDC, out) => {
      if (!answersErrorsWithPage(ctx.oidc?.route)) {
        ctx.type = 'json';
        ctx.body = out;
        return;
      }
      renderErrorPage(ctx, ctx.status >= 400 ? ctx.status : 400, out.error);
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;
  compareSecretsAsDigests(
    provider,
    storage === 'postgres' ? clientSecretGuard(knex, config.throttle.client) : undefined,
  );
  refuseUndeliverableLogoutUris(provider, backchannelLogoutPolicy(config));
  // A DPoP proof or client assertion is accepted once, even when two copies arrive together.
  detectSimultaneousReplays(provider);
  // A payment's own grant never becomes the session's grant for the app (consent.ts).
  restoreSessionGrants(provider);
  return provider;
}
