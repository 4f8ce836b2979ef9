import { createHash } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify, type JWK } from 'jose';
import type { Knex } from '../db/knex.ts';
import { isStorableText } from '../db/storable.ts';

/**
 * DPoP proofs (RFC 9449 §4.3) at the bank API, and owner of `bank.dpop_proofs`: a proof is a JWT
 * the app signs with the key its token is bound to, for this one request (method and URL) and this
 * one token (`ath`), fresh (`iat`), and accepted once (its `jti` is kept until it could no longer
 * be fresh). The bank API hands out no nonces of its own: freshness is the proof's `iat`.
 */

/** What a proof may be signed with: the algorithms Passbook offers (src/oidc/provider.ts). */
export const DPOP_ALGORITHMS: readonly string[] = ['ES256', 'PS256', 'EdDSA'];

/**
 * Seconds a proof's `iat` may be off the bank API's clock, either way: a proof is made just before
 * its request, so a minute covers a slow network and a clock a little off, and no more.
 */
const IAT_WINDOW_SECONDS = 60;

/** Longer than any identifier a client library makes; keeps the replay records small. */
const MAX_JTI_LENGTH = 256;

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** A proof that does not hold for this request; the message says why (for the app's developer). */
export class InvalidDpopProof extends Error {
  override name = 'InvalidDpopProof';
}

export interface ProofRequest {
  method: string;
  /** The URL the app called, as it called it: BANK_API_URL and the path, without query. */
  url: string;
  accessToken: string;
}

export interface AcceptedProof {
  /** The RFC 7638 thumbprint of the key that signed it: the token must be bound to this one. */
  jkt: string;
  jti: string;
  iat: number;
}

function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest('base64url');
}

function sameUrl(htu: unknown, expected: string): boolean {
  if (typeof htu !== 'string') return false;
  const url = URL.parse(htu);
  if (!url) return false;
  url.search = '';
  url.hash = '';
  return url.href === new URL(expected).href;
}

async function verifiedJwt(proof: string) {
  try {
    return await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...DPOP_ALGORITHMS] });
  } catch {
    throw new InvalidDpopProof(
      `The DPoP proof is not a dpop+jwt signed with its embedded public key (${DPOP_ALGORITHMS.join(', ')}).`,
    );
  }
}

/** Checks everything a proof says against the request; throws InvalidDpopProof naming what failed. */
export async function checkProof(
  proof: string,
  request: ProofRequest,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<AcceptedProof> {
  const { payload, protectedHeader } = await verifiedJwt(proof);
  const jwk: JWK | undefined = protectedHeader.jwk;
  if (!jwk || PRIVATE_JWK_MEMBERS.some((member) => member in jwk)) {
    throw new InvalidDpopProof('The DPoP proof must carry a public key, and no private one.');
  }
  const { jti, iat, htm, htu, ath } = payload as Record<string, unknown>;
  if (!isStorableText(jti, MAX_JTI_LENGTH) || jti === '') {
    throw new InvalidDpopProof('The DPoP proof must have a jti.');
  }
  if (typeof iat !== 'number' || Math.abs(nowSeconds - iat) > IAT_WINDOW_SECONDS) {
    throw new InvalidDpopProof(`The DPoP proof's iat must be within ${IAT_WINDOW_SECONDS} seconds of now.`);
  }
  if (htm !== request.method) throw new InvalidDpopProof('The DPoP proof is for another method (htm).');
  if (!sameUrl(htu, request.url)) throw new InvalidDpopProof('The DPoP proof is for another URL (htu).');
  if (ath !== accessTokenHash(request.accessToken)) {
    throw new InvalidDpopProof('The DPoP proof is for another access token (ath).');
  }
  return { jkt: await calculateJwkThumbprint(jwk), jti, iat };
}

/*
 * Insert-only, so that of two simultaneous copies of one proof exactly one is stored: the second
 * waits for the first's row, then finds it there. An expired record still there is taken over. The
 * same statement deletes a few expired records (skipping any another request is deleting), so the
 * table never holds much more than the proofs of the last two minutes.
 */
const RECORD_PROOF = `WITH purged AS (
    DELETE FROM bank.dpop_proofs
    WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM bank.dpop_proofs
      WHERE expires_at <= :now AND NOT (jkt = :jkt AND jti = :jti)
      LIMIT 10 FOR UPDATE SKIP LOCKED))
  )
  INSERT INTO bank.dpop_proofs AS existing (jkt, jti, expires_at) VALUES (:jkt, :jti, :expiresAt)
  ON CONFLICT (jkt, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE existing.expires_at <= :now
  RETURNING 1 AS stored`;

/** Records an accepted proof; false when it was already recorded (a replay). */
export async function recordProof(knex: Knex, proof: AcceptedProof, now = new Date()): Promise<boolean> {
  // Past this moment the proof's iat no longer passes, so its record is not needed.
  const expiresAt = new Date((proof.iat + IAT_WINDOW_SECONDS + 1) * 1000);
  const { rows } = await knex.raw<{ rows: { stored: number }[] }>(RECORD_PROOF, {
    now,
    jkt: proof.jkt,
    jti: proof.jti,
    expiresAt,
  });
  return rows.length > 0;
}
