import { createHash, randomBytes } from 'node:crypto';
import type { ClientMetadata } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import { MAX_IDENTIFIER_LENGTH, isStorableText } from '../db/storable.ts';
import type { AppSigningAlgorithm } from './app-keys.ts';

/**
 * Owner of `clients`: the third-party apps registered with the bank. The secret is generated
 * here, shown once, and stored only as a digest (see secretDigest).
 */

const TABLE = 'clients';

export interface NewClient {
  /** Chosen by the bank for well-known apps; otherwise random. */
  clientId?: string;
  name: string;
  /** Empty for a resource server, which never sends customers anywhere. */
  redirectUris: string[];
  postLogoutRedirectUris?: string[] | undefined;
  /** Where Passbook POSTs a logout token when the customer's session ends (OpenID back-channel logout). */
  backchannelLogoutUri?: string | undefined;
  /** A public client (a native or browser app) has no secret and relies on PKCE alone. */
  isPublic: boolean;
  /** The most the app may ever ask for; unset means the whole catalogue. */
  scope?: string;
  /** A bank API that checks any app's token by introspection; it gets no tokens itself. */
  isResourceServer?: boolean;
  /**
   * The app's public keys: it then authenticates with a signed assertion (private_key_jwt)
   * instead of a secret, and is given none.
   */
  jwks?: { keys: Record<string, unknown>[] } | undefined;
  /** Where the app publishes its public keys, instead of `jwks`. */
  jwksUri?: string | undefined;
  /** The one algorithm the app signs its client assertions with. */
  authSigningAlg?: AppSigningAlgorithm | undefined;
  /**
   * `fapi2`: an app of the FAPI 2.0 Security Profile (payments): pushed authorization requests,
   * private_key_jwt, DPoP-bound tokens; see src/oidc/fapi.ts. Unset: an ordinary app.
   */
  profile?: ClientProfile | undefined;
}

export const CLIENT_PROFILES = ['ordinary', 'fapi2'] as const;
export type ClientProfile = (typeof CLIENT_PROFILES)[number];

export interface RegisteredClient {
  client_id: string;
  /** Present once, at creation, for confidential clients. */
  client_secret?: string;
  metadata: ClientMetadata;
}

export interface ClientSummary {
  client_id: string;
  client_name: string;
  redirect_uris: string[];
  token_endpoint_auth_method: string;
  scope: string | undefined;
  resource_server: boolean;
  profile: ClientProfile;
  created_at: string;
}

export class InvalidClientError extends Error {
  override name = 'InvalidClientError';
}

/** Client secrets are 256 random bits, so a fast digest is enough; it is compared in constant time. */
export function secretDigest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

/** The client metadata key that marks a resource server (see src/oidc/provider.ts). */
export const RESOURCE_SERVER_METADATA = 'resource_server';
/** The client metadata key that names an app's profile (src/oidc/fapi.ts); absent: ordinary. */
export const PROFILE_METADATA = 'app_profile';

function hasKeys(client: NewClient): boolean {
  return client.jwks !== undefined || client.jwksUri !== undefined;
}

function authMethodOf(client: NewClient): ClientMetadata['token_endpoint_auth_method'] {
  if (client.isPublic) return 'none';
  return hasKeys(client) ? 'private_key_jwt' : 'client_secret_basic';
}

/** An app's public keys and the one algorithm it signs assertions with. */
function keysMetadata(client: NewClient): Partial<ClientMetadata> {
  return {
    ...(client.jwks ? { jwks: client.jwks } : {}),
    ...(client.jwksUri ? { jwks_uri: client.jwksUri } : {}),
    ...(client.authSigningAlg ? { token_endpoint_auth_signing_alg: client.authSigningAlg } : {}),
  };
}

/**
 * What the FAPI 2.0 Security Profile asks of an app, written into its metadata so that the
 * engine enforces it: every authorization request pushed first (PAR), tokens bound to the app's
 * DPoP key, ID tokens signed with ES256; and what only such an app may do: ask for payments. src/oidc/fapi.ts refuses an app of this profile whose
 * metadata says otherwise.
 */
function fapi2Metadata(): Partial<ClientMetadata> {
  return {
    [PROFILE_METADATA]: 'fapi2',
    require_pushed_authorization_requests: true,
    dpop_bound_access_tokens: true,
    id_token_signed_response_alg: 'ES256',
    // Payments (RFC 9396), each approved on its own screen, are offered to these apps only.
    authorization_details_types: ['payment_initiation'],
  };
}

export function profileOf(metadata: ClientMetadata): ClientProfile {
  return metadata[PROFILE_METADATA] === 'fapi2' ? 'fapi2' : 'ordinary';
}

export function clientMetadataFor(client: NewClient, clientId: string): ClientMetadata {
  if (client.isResourceServer) {
    return {
      client_id: clientId,
      client_name: client.name,
      redirect_uris: [],
      response_types: [],
      grant_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      [RESOURCE_SERVER_METADATA]: true,
    };
  }
  return {
    client_id: clientId,
    client_name: client.name,
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris ?? [],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: authMethodOf(client),
    ...keysMetadata(client),
    ...(client.profile === 'fapi2' ? fapi2Metadata() : {}),
    ...(client.scope ? { scope: client.scope } : {}),
    ...(client.backchannelLogoutUri
      ? { backchannel_logout_uri: client.backchannelLogoutUri, backchannel_logout_session_required: true }
      : {}),
  };
}

/**
 * Stores a new client. `validate` checks the metadata against the provider's own rules first
 * (it throws on anything the provider would refuse), so a client that is stored always loads.
 * The provider's rules include the back-channel logout delivery policy: a
 * `backchannel_logout_uri` that could never receive a logout token is refused here, with the
 * reason (src/oidc/backchannel-logout.ts).
 */
export async function createClient(
  knex: Knex,
  client: NewClient,
  validate: (metadata: ClientMetadata) => Promise<void>,
): Promise<RegisteredClient> {
  const clientId = client.clientId ?? randomBytes(12).toString('base64url');
  const clientSecret = client.isPublic || hasKeys(client) ? undefined : randomBytes(32).toString('base64url');
  const metadata = clientMetadataFor(client, clientId);
  try {
    await validate(clientSecret ? { ...metadata, client_secret: secretDigest(clientSecret) } : metadata);
  } catch (error) {
    const { error_description: description, message } = error as Error & { error_description?: string };
    throw new InvalidClientError(description ?? message);
  }
  const inserted = await knex(TABLE)
    .insert({
      client_id: clientId,
      metadata,
      client_secret_hash: clientSecret ? secretDigest(clientSecret) : null,
    })
    .onConflict('client_id')
    .ignore()
    .returning('client_id');
  if (inserted.length === 0) throw new InvalidClientError(`client_id "${clientId}" is taken`);
  return { client_id: clientId, ...(clientSecret ? { client_secret: clientSecret } : {}), metadata };
}

/**
 * The metadata oidc-provider loads. For a confidential client `client_secret` carries the
 * digest, which the provider's secret comparison is taught to expect (src/oidc/client-secrets.ts).
 */
export async function findClientMetadata(knex: Knex, clientId: string): Promise<ClientMetadata | undefined> {
  // A client_id from a request can be anything; one that could never have been stored matches nothing.
  if (!isStorableText(clientId, MAX_IDENTIFIER_LENGTH)) return undefined;
  const row: { metadata: ClientMetadata; client_secret_hash: string | null } | undefined = await knex(TABLE)
    .where({ client_id: clientId })
    .first('metadata', 'client_secret_hash');
  if (!row) return undefined;
  return row.client_secret_hash ? { ...row.metadata, client_secret: row.client_secret_hash } : row.metadata;
}

export async function listClients(knex: Knex): Promise<ClientSummary[]> {
  const rows = await knex(TABLE)
    .select<{ metadata: ClientMetadata; created_at: Date }[]>('metadata', 'created_at')
    .orderBy('created_at');
  return rows.map(({ metadata, created_at }) => ({
    client_id: String(metadata.client_id),
    client_name: String(metadata.client_name ?? ''),
    redirect_uris: (metadata.redirect_uris as string[] | undefined) ?? [],
    token_endpoint_auth_method: String(metadata.token_endpoint_auth_method),
    scope: metadata.scope,
    resource_server: metadata[RESOURCE_SERVER_METADATA] === true,
    profile: profileOf(metadata),
    created_at: created_at.toISOString(),
  }));
}

/** Returns whether a client was deleted. Its grants and tokens stop working with it. */
export async function deleteClient(knex: Knex, clientId: string): Promise<boolean> {
  const deleted = await knex(TABLE).where({ client_id: clientId }).delete();
  return deleted > 0;
}
