import { createHash, randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import { SignJWT, calculateJwkThumbprint, exportJWK, type JWK } from 'jose';

/**
 * DPoP (RFC 9449) as the tests need it beyond what a client library does: a key pair an app holds,
 * its thumbprint, and proofs made by hand (replayed, for another URL, with a wrong `ath`), the way
 * an attacker or a careless app would send them.
 */

export interface DpopKey {
  keyPair: oidc.CryptoKeyPair;
  publicJwk: JWK;
  thumbprint: string;
}

export async function newDpopKey(alg = 'ES256'): Promise<DpopKey> {
  const keyPair = await oidc.randomDPoPKeyPair(alg);
  const publicJwk = await exportJWK(keyPair.publicKey);
  return { keyPair, publicJwk, thumbprint: await calculateJwkThumbprint(publicJwk) };
}

export interface ProofClaims {
  htm: string;
  htu: string;
  /** The access token the proof goes with: its `ath`. */
  accessToken?: string;
  nonce?: string;
  iat?: number;
  jti?: string;
  alg?: string;
}

function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest('base64url');
}

/** A DPoP proof signed with `key`, for exactly these claims. */
export function dpopProof(key: DpopKey, claims: ProofClaims): Promise<string> {
  const payload: Record<string, unknown> = { htm: claims.htm, htu: claims.htu };
  if (claims.accessToken !== undefined) payload.ath = accessTokenHash(claims.accessToken);
  if (claims.nonce !== undefined) payload.nonce = claims.nonce;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: claims.alg ?? 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000))
    .setJti(claims.jti ?? randomUUID())
    .sign(key.keyPair.privateKey);
}

/**
 * The client library's DPoP handle for `key`. The library names an Ed25519 signature `Ed25519`
 * (RFC 9864); Passbook and the bank API offer it under the name FAPI 2.0 uses, `EdDSA`, so the app
 * renames it as the library documents.
 */
export function dpopHandle(config: oidc.Configuration, key: DpopKey): oidc.DPoPHandle {
  return oidc.getDPoPHandle(config, key.keyPair, {
    [oidc.modifyAssertion]: (header) => {
      if (header.alg === 'Ed25519') header.alg = 'EdDSA';
    },
  });
}
