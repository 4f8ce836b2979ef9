import * as oidc from 'openid-client';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import type { AppSigningAlgorithm } from '../../src/clients/app-keys.ts';
import { registerTestApp, TEST_REDIRECT_URI, type TestPassbook } from './passbook.ts';
import type { AuthorizationRequest } from './third-party-app.ts';
import type { DpopKey } from './dpop.ts';
import { dpopHandle } from './dpop.ts';

/**
 * An app of the FAPI 2.0 Security Profile, as a payment app is registered and behaves: its own
 * key pair for private_key_jwt, registered as `clients:create --profile fapi2` registers it, and
 * openid-client configured to authenticate with it.
 */

export interface FapiApp {
  client: RegisteredClient;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function registerFapiApp(
  passbook: TestPassbook,
  alg: AppSigningAlgorithm = 'ES256',
  name = 'Settle Up',
): Promise<FapiApp> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: `${name}-key`, alg };
  const client = await registerTestApp(passbook, {
    name,
    jwks: { keys: [publicJwk] },
    authSigningAlg: alg,
    profile: 'fapi2',
  });
  return { client, privateKey, publicJwk };
}

export function fapiConfiguration(passbook: TestPassbook, app: FapiApp): Promise<oidc.Configuration> {
  return oidc.discovery(
    new URL(passbook.issuer),
    app.client.client_id,
    undefined,
    oidc.PrivateKeyJwt(
      { key: app.privateKey, kid: String(app.publicJwk.kid) },
      {
        // As for DPoP proofs (dpop.ts): the library names an Ed25519 signature `Ed25519`, the
        // app registered it under FAPI 2.0's name, `EdDSA`.
        [oidc.modifyAssertion]: (header) => {
          if (header.alg === 'Ed25519') header.alg = 'EdDSA';
        },
      },
    ),
    { execute: [oidc.allowInsecureRequests] },
  );
}

/** A pushed authorization request (PAR) with PKCE and state, bound to `dpopKey` when given. */
export async function pushedAuthorizationRequest(
  config: oidc.Configuration,
  dpopKey: DpopKey | undefined,
  params: Record<string, string> = {},
): Promise<AuthorizationRequest> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = await oidc.buildAuthorizationUrlWithPAR(
    config,
    {
      redirect_uri: TEST_REDIRECT_URI,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...params,
    },
    dpopKey ? { DPoP: dpopHandle(config, dpopKey) } : {},
  );
  return { url, codeVerifier, state, nonce };
}
