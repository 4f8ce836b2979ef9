import { importJWK, type JWK } from 'jose';
import * as oidc from 'openid-client';
import { useTestPassbook } from '../support/passbook.ts';

const passbook = useTestPassbook();

type Metadata = Record<string, unknown>;

async function fetchDiscovery(): Promise<{ response: Response; metadata: Metadata }> {
  const response = await fetch(`${passbook.issuer}/.well-known/openid-configuration`);
  return { response, metadata: (await response.json()) as Metadata };
}

async function fetchJwks(): Promise<{ response: Response; keys: JWK[] }> {
  const { metadata } = await fetchDiscovery();
  const response = await fetch(String(metadata.jwks_uri));
  const body = (await response.json()) as { keys?: JWK[] };
  return { response, keys: body.keys ?? [] };
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

describe('oidcc-discovery-endpoint-verification: the discovery document', () => {
  test('is served as JSON at /.well-known/openid-configuration', async () => {
    const { response } = await fetchDiscovery();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json\b/);
  });

  test('names as issuer exactly the URL it is served under, minus the well-known suffix', async () => {
    const { metadata } = await fetchDiscovery();
    expect(metadata.issuer).toBe(passbook.issuer);
  });

  test('is accepted by openid-client, which checks the issuer against the discovery URL', async () => {
    const config = await oidc.discovery(new URL(passbook.issuer), 'any-client', undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    expect(config.serverMetadata().issuer).toBe(passbook.issuer);
  });

  test.each([
    'authorization_endpoint',
    'token_endpoint',
    'userinfo_endpoint',
    'jwks_uri',
    'end_session_endpoint',
    'revocation_endpoint',
    'introspection_endpoint',
    'pushed_authorization_request_endpoint',
  ])('advertises %s on the issuer, and something answers there', async (name) => {
    const { metadata } = await fetchDiscovery();
    const endpoint = metadata[name];
    expect(typeof endpoint).toBe('string');
    expect(String(endpoint).startsWith(`${passbook.issuer}/`)).toBe(true);
    const method = ['authorization_endpoint', 'jwks_uri', 'end_session_endpoint'].includes(name)
      ? 'GET'
      : 'POST';
    const response = await fetch(String(endpoint), { method, redirect: 'manual' });
    expect(response.status).not.toBe(404);
    expect(response.status).toBeLessThan(500);
  });

  test('supports the code response type', async () => {
    const { metadata } = await fetchDiscovery();
    expect(metadata.response_types_supported).toContain('code');
  });

  test('lists subject types, RS256 ID tokens, the openid scope and the claims it supports', async () => {
    const { metadata } = await fetchDiscovery();
    expect(Array.isArray(metadata.subject_types_supported)).toBe(true);
    expect((metadata.subject_types_supported as unknown[]).length).toBeGreaterThan(0);
    expect(metadata.id_token_signing_alg_values_supported).toContain('RS256');
    expect(metadata.scopes_supported).toContain('openid');
    expect(metadata.claims_supported).toContain('sub');
  });

  test('offers S256 as the only PKCE code challenge method', async () => {
    const { metadata } = await fetchDiscovery();
    expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
  });

  test('advertises RP-initiated logout and back-channel logout with session ids', async () => {
    const { metadata } = await fetchDiscovery();
    expect(typeof metadata.end_session_endpoint).toBe('string');
    expect(metadata.backchannel_logout_supported).toBe(true);
    expect(metadata.backchannel_logout_session_supported).toBe(true);
  });
});

describe('discovery advertises exactly what Passbook supports, engine defaults included', () => {
  test('names exactly these members: nothing oidc-provider turned on by itself', async () => {
    const { metadata } = await fetchDiscovery();
    expect(Object.keys(metadata).sort()).toEqual(
      [
        'acr_values_supported',
        'authorization_details_types_supported',
        'authorization_endpoint',
        'authorization_response_iss_parameter_supported',
        'backchannel_logout_session_supported',
        'backchannel_logout_supported',
        'claim_types_supported',
        'claims_parameter_supported',
        'claims_supported',
        'code_challenge_methods_supported',
        'dpop_signing_alg_values_supported',
        'end_session_endpoint',
        'grant_types_supported',
        'id_token_signing_alg_values_supported',
        'introspection_endpoint',
        'issuer',
        'jwks_uri',
        'pushed_authorization_request_endpoint',
        'request_uri_parameter_supported',
        'response_modes_supported',
        'response_types_supported',
        'revocation_endpoint',
        'scopes_supported',
        'subject_types_supported',
        'token_endpoint',
        'token_endpoint_auth_methods_supported',
        'token_endpoint_auth_signing_alg_values_supported',
        'userinfo_endpoint',
      ].sort(),
    );
  });

  test('offers DPoP with FAPI 2.0’s three algorithms, and payment_initiation as the only kind of rich authorization request', async () => {
    const { metadata } = await fetchDiscovery();
    expect(metadata.dpop_signing_alg_values_supported).toEqual(['ES256', 'PS256', 'EdDSA']);
    expect(metadata).not.toHaveProperty('resource_indicators_supported');
    expect(metadata.authorization_details_types_supported).toEqual(['payment_initiation']);
  });

  test('says what each supported choice is', async () => {
    const { metadata } = await fetchDiscovery();
    expect(metadata).toMatchObject({
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      response_modes_supported: ['form_post', 'fragment', 'query'],
      claims_parameter_supported: true,
      acr_values_supported: ['urn:passbook:acr:password', 'urn:passbook:acr:two-factors'],
      request_uri_parameter_supported: false,
      authorization_response_iss_parameter_supported: true,
      id_token_signing_alg_values_supported: ['RS256', 'ES256'],
      token_endpoint_auth_methods_supported: [
        'client_secret_basic',
        'client_secret_post',
        'private_key_jwt',
        'none',
      ],
    });
  });
});

describe('oidcc-discovery-endpoint-verification: the JWKS', () => {
  test('is served as a JSON key set with at least one key', async () => {
    const { response, keys } = await fetchJwks();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/(jwk-set\+)?json\b/);
    expect(keys.length).toBeGreaterThan(0);
  });

  test('publishes no private key members', async () => {
    const { keys } = await fetchJwks();
    for (const key of keys) {
      const leaked = PRIVATE_MEMBERS.filter((member) => member in key);
      expect({ kid: key.kid, leaked }).toEqual({ kid: key.kid, leaked: [] });
    }
  });

  test('gives every key a kid of its own', async () => {
    const { keys } = await fetchJwks();
    const kids = keys.map((key) => key.kid);
    expect(kids.every((kid) => typeof kid === 'string' && kid.length > 0)).toBe(true);
    expect(new Set(kids).size).toBe(kids.length);
  });

  test('has an RS256 signing key', async () => {
    const { keys } = await fetchJwks();
    const rs256 = keys.filter(
      (key) => key.kty === 'RSA' && key.alg === 'RS256' && (key.use ?? 'sig') === 'sig',
    );
    expect(rs256.length).toBeGreaterThanOrEqual(1);
  });

  test('holds only keys that import as public keys', async () => {
    const { keys } = await fetchJwks();
    for (const key of keys) {
      const imported = await importJWK(key, key.alg);
      expect(imported instanceof Uint8Array ? 'secret' : imported.type).toBe('public');
    }
  });
});
