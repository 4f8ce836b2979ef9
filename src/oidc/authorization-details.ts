import {
  errors,
  type AuthorizationDetailsForAccessToken,
  type AuthorizationDetailsForGrantSource,
  type AuthorizationDetailsForIntrospection,
  type Configuration,
  type KoaContextWithOIDC,
} from 'oidc-provider';

/**
 * Rich authorization requests (RFC 9396): the details an app may ask for, and which of them ride
 * on each code, access token and introspection answer. The bank API is the one resource
 * (RFC 8707) they are for: its base URL is the `resource` indicator and the `aud` of such tokens.
 */

type ResourceIndicators = NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>;

const PAYMENT_INITIATION = 'payment_initiation';

/** Seconds a token carrying a payment lives: long enough to book it, no longer. */
const PAYMENT_TOKEN_TTL = 5 * 60;

function asksForDetails(ctx: KoaContextWithOIDC): boolean {
  return ctx.oidc.params?.authorization_details !== undefined;
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
      if (!asksForDetails(ctx)) {
        throw new errors.InvalidTarget('the bank API is named as a resource only by payment requests');
      }
      // The token's power is its authorization details, not a scope.
      return {
        scope: '',
        audience: bankApiUrl,
        accessTokenTTL: PAYMENT_TOKEN_TTL,
        accessTokenFormat: 'opaque',
      };
    },
  };
}

const forGrantSource: AuthorizationDetailsForGrantSource = (ctx) => ctx.oidc.grant?.rar;
const forAccessToken: AuthorizationDetailsForAccessToken = (_ctx, _token, source) => source?.rar;
const forIntrospection: AuthorizationDetailsForIntrospection = (_ctx, token) => token.rar;

export function authorizationDetailsPolicy() {
  return {
    enabled: true,
    types: {
      [PAYMENT_INITIATION]: {
        validate: () => {
          throw new errors.InvalidAuthorizationDetails('payment_initiation is not offered yet');
        },
      },
    },
    authorizationDetailsForGrantSource: forGrantSource,
    authorizationDetailsForAccessToken: forAccessToken,
    authorizationDetailsForIntrospection: forIntrospection,
  };
}
