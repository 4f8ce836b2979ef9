import { errors, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { PROFILE_METADATA, RESOURCE_SERVER_METADATA } from '../clients/clients.ts';
import { isAppSigningAlgorithm } from '../clients/app-keys.ts';

/**
 * The FAPI 2.0 Security Profile, for the apps registered with it (`clients:create --profile
 * fapi2`), beside ordinary apps on the same server. Under profile 2.0 the engine itself checks a
 * few things (a client assertion's `aud` is the issuer, `redirect_uri` always sent); the rest of
 * the profile is the bank's policy and lives here and in the app's metadata
 * (src/clients/clients.ts): every authorization request pushed first, client authentication by
 * private_key_jwt with PS256, ES256 or EdDSA, PKCE (required of every app), tokens bound to the
 * app's DPoP key, ID tokens signed with ES256, codes that live at most 60 seconds, and refresh
 * tokens that are not rotated (the profile forbids it: a bound token cannot be stolen and used,
 * and a rotation whose answer is lost would strand the app).
 */

type Features = NonNullable<Configuration['features']>;
type ExtraClientMetadata = NonNullable<Configuration['extraClientMetadata']>;

/** FAPI 2.0 Security Profile §5.3.2.1: authorization codes live at most 60 seconds. */
const FAPI_CODE_TTL = 60;

const FAPI_ID_TOKEN_ALGORITHMS = new Set(['ES256', 'PS256']);

interface HasMetadata {
  metadata(): ClientMetadata;
}

/**
 * Each app's profile, read once per engine instance of the app: metadata() rebuilds every property
 * on every call (a percent of a refresh's CPU), and the engine makes a new instance whenever the
 * app's stored registration changes, so an instance's answer never goes stale.
 */
const profileOf = new WeakMap<HasMetadata, boolean>();

function isFapiClient(client: HasMetadata | undefined): boolean {
  if (!client) return false;
  let fapi = profileOf.get(client);
  if (fapi === undefined) {
    fapi = client.metadata()[PROFILE_METADATA] === 'fapi2';
    profileOf.set(client, fapi);
  }
  return fapi;
}

/** features.fapi: profile 2.0 for FAPI apps, none for the others (and before the app is known). */
export function fapiProfile(): Features['fapi'] {
  return {
    enabled: true,
    profile: (_ctx: KoaContextWithOIDC, client) => (isFapiClient(client) ? '2.0' : undefined),
  };
}

/** ttl.AuthorizationCode: the bank's code lifetime, at most 60 seconds for a FAPI app. */
export function codeLifetime(lifetime: number) {
  return (_ctx: KoaContextWithOIDC, _code: unknown, client: HasMetadata): number =>
    isFapiClient(client) ? Math.min(lifetime, FAPI_CODE_TTL) : lifetime;
}

/** rotateRefreshToken: every ordinary app's refresh rotates; a FAPI app's never does. */
export function rotatesRefreshTokens(ctx: KoaContextWithOIDC): boolean {
  return !isFapiClient(ctx.oidc.client);
}

/** Why the metadata of an app of the FAPI 2.0 profile falls short of it, or undefined. */
function fapiShortfall(metadata: ClientMetadata): string | undefined {
  if (metadata.token_endpoint_auth_method !== 'private_key_jwt') {
    return 'a FAPI 2.0 app authenticates with private_key_jwt';
  }
  if (!isAppSigningAlgorithm(metadata.token_endpoint_auth_signing_alg)) {
    return 'a FAPI 2.0 app signs its assertions with PS256, ES256 or EdDSA';
  }
  if (metadata.require_pushed_authorization_requests !== true) {
    return 'a FAPI 2.0 app pushes its authorization requests';
  }
  if (metadata.dpop_bound_access_tokens !== true) return "a FAPI 2.0 app's tokens are bound to its DPoP key";
  if (!FAPI_ID_TOKEN_ALGORITHMS.has(String(metadata.id_token_signed_response_alg))) {
    return "a FAPI 2.0 app's ID tokens are signed with ES256 or PS256";
  }
  if (metadata[RESOURCE_SERVER_METADATA] === true) return 'a resource server has no FAPI 2.0 profile';
  return undefined;
}

/**
 * extraClientMetadata: the marks Passbook adds to an app (resource server, profile), checked
 * whenever an app is loaded, so that a FAPI app whose stored metadata was weakened fails to load
 * rather than being served as an ordinary one.
 */
export function appMarks(): ExtraClientMetadata {
  return {
    properties: [RESOURCE_SERVER_METADATA, PROFILE_METADATA],
    validator: (_ctx, key, value, metadata) => {
      if (key === RESOURCE_SERVER_METADATA && value !== undefined && typeof value !== 'boolean') {
        throw new errors.InvalidClientMetadata(`${RESOURCE_SERVER_METADATA} must be a boolean`);
      }
      if (key !== PROFILE_METADATA || value === undefined) return;
      if (value !== 'fapi2')
        throw new errors.InvalidClientMetadata(`${PROFILE_METADATA} must be fapi2 or absent`);
      const shortfall = fapiShortfall(metadata);
      if (shortfall) throw new errors.InvalidClientMetadata(shortfall);
    },
  };
}
