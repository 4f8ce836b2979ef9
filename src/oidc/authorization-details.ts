import {
  errors,
  type AuthorizationDetailsForAccessToken,
  type AuthorizationDetailsForGrantSource,
  type AuthorizationDetailsForIntrospection,
  type Configuration,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import {
  InvalidPaymentDetails,
  PAYMENT_INITIATION,
  parsePaymentRequest,
  type PaymentPolicy,
} from '../payments/payment-initiation.ts';
import { accountInformationOf, holdsPayment } from './account-information.ts';

/**
 * Rich authorization requests (RFC 9396): the details an app may ask for, and which of them ride
 * on each code, access token and introspection answer. The bank API is the one resource
 * (RFC 8707) they are for: its base URL is the `resource` indicator and the `aud` of such tokens.
 *
 * The one type offered is `payment_initiation` (src/payments/payment-initiation.ts). A payment's
 * details are what the customer approved on the consent screen for this very request, on a grant
 * of its own (consent.ts): a code carries them only when its request asked for a payment, and an
 * access token only what its code carries.
 *
 * An ordinary (scope) grant carries the customer's choice of accounts instead, the
 * `account_information` detail (account-information.ts), which no app may request: its codes
 * carry only that detail, their access tokens and refresh tokens carry it on, and a refresh takes
 * the grant's current choice. The engine attaches details to any access token, not only to a
 * resource's, so the bank API reads the choice in introspection's `authorization_details`.
 */

type ResourceIndicators = NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>;

/** Seconds a token carrying a payment lives: long enough to book it, no longer. */
export const PAYMENT_TOKEN_TTL = 5 * 60;

function asksForDetails(ctx: KoaContextWithOIDC): boolean {
  return ctx.oidc.params?.authorization_details !== undefined;
}

/** At the authorization endpoint, the request; at the token endpoint, the code it redeems. */
function isForPayment(ctx: KoaContextWithOIDC): boolean {
  return asksForDetails(ctx) || holdsPayment(ctx.oidc.entities.AuthorizationCode?.rar);
}

/** RFC 8707: the bank API is the only resource; a request for details defaults to it. */
export function bankApiResource(bankApiUrl: string): ResourceIndicators {
  return {
    enabled: true,
    defaultResource: (ctx, _client, oneOf) => oneOf ?? (asksForDetails(ctx) ? bankApiUrl : undefined),
    useGrantedResource: () => true,
    getResourceServerInfo: (ctx, resourceIndicator) => {
      if (resourceIndicator !== bankApiUrl) throw new errors.InvalidTarget();
      // A token bound to the bank API carries no scope: only a payment's details give it power.
      if (!isForPayment(ctx)) {
        throw new errors.InvalidTarget('the bank API is named as a resource only by payment requests');
      }
      return {
        scope: '',
        audience: bankApiUrl,
        accessTokenTTL: PAYMENT_TOKEN_TTL,
        accessTokenFormat: 'opaque',
      };
    },
  };
}

/** The request's details, which the engine has checked are JSON (check_rar) before any type's validate. */
function requestedDetails(ctx: KoaContextWithOIDC): unknown {
  return JSON.parse(String(ctx.oidc.params?.authorization_details));
}

/** The payment_initiation type's check: the whole request, so that exactly one payment is asked for. */
function validatePayment(policy: PaymentPolicy) {
  return (ctx: KoaContextWithOIDC) => {
    try {
      parsePaymentRequest(requestedDetails(ctx), policy);
    } catch (error) {
      if (error instanceof InvalidPaymentDetails) throw new errors.InvalidAuthorizationDetails(error.message);
      throw error;
    }
  };
}

// A payment request's code carries its payment; any other code only the customer's account choice.
const forGrantSource: AuthorizationDetailsForGrantSource = (ctx) =>
  asksForDetails(ctx) ? ctx.oidc.grant?.rar : accountInformationOf(ctx.oidc.grant?.rar);

// The approved payment is fixed at consent: an app cannot narrow or restate it at the token endpoint.
const forAccessToken: AuthorizationDetailsForAccessToken = (ctx, _token, source) => {
  if (ctx.oidc.route === 'token' && asksForDetails(ctx)) {
    throw new errors.InvalidAuthorizationDetails(
      'a payment is fixed when the customer approves it; send no authorization_details to the token endpoint',
    );
  }
  // A refresh reads the choice the customer holds now, so a narrower one made since applies at once.
  if (ctx.oidc.params?.grant_type === 'refresh_token') return accountInformationOf(ctx.oidc.grant?.rar);
  return source?.rar;
};

const forIntrospection: AuthorizationDetailsForIntrospection = (_ctx, token) => token.rar;

export function authorizationDetailsPolicy(policy: PaymentPolicy) {
  return {
    enabled: true,
    types: { [PAYMENT_INITIATION]: { validate: validatePayment(policy) } },
    authorizationDetailsForGrantSource: forGrantSource,
    authorizationDetailsForAccessToken: forAccessToken,
    authorizationDetailsForIntrospection: forIntrospection,
  };
}
