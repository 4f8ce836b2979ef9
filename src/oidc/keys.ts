import type { JWK } from 'jose';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { Knex } from '../db/knex.ts';
import { generateSecret } from '../config.ts';
import { LOCKS } from '../db/locks.ts';

/**
 * Owner of `signing_keys` and `cookie_keys`: the secrets every Passbook process must share.
 * They are created on the first start, under an advisory lock so that two processes starting
 * together cannot both create them.
 */

/** The algorithms the bank signs with; the first is the default for ID tokens. */
const SIGNING_ALGORITHMS = ['RS256', 'ES256'] as const;
type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

async function generateSigningKey(alg: SigningAlgorithm): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { ...jwk, kid, alg, use: 'sig' };
}

async function withCreationLock<T>(knex: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  return knex.transaction(async (trx) => {
    await trx.raw('SELECT pg_advisory_xact_lock(?)', [LOCKS.keyCreation]);
    return work(trx);
  });
}

/** Private JWKs, oldest first per algorithm; creates one key per algorithm that has none. */
export async function loadSigningKeys(knex: Knex): Promise<JWK[]> {
  return withCreationLock(knex, async (trx) => {
    const rows = await trx('signing_keys')
      .select<{ alg: string; private_jwk: JWK }[]>('alg', 'private_jwk')
      .orderBy('created_at');
    for (const alg of SIGNING_ALGORITHMS) {
      if (rows.some((row) => row.alg === alg)) continue;
      const jwk = await generateSigningKey(alg);
      await trx('signing_keys').insert({ kid: jwk.kid, alg, private_jwk: jwk });
      rows.push({ alg, private_jwk: jwk });
    }
    return rows.map((row) => row.private_jwk);
  });
}

/** COOKIE_KEYS when configured; otherwise (development) a secret generated once and stored. */
export async function loadCookieKeys(knex: Knex, configured: string[] | undefined): Promise<string[]> {
  if (configured) return configured;
  return withCreationLock(knex, async (trx) => {
    const rows = await trx('cookie_keys').select<{ secret: string }[]>('secret').orderBy('id', 'desc');
    if (rows.length > 0) return rows.map((row) => row.secret);
    const secret = generateSecret();
    await trx('cookie_keys').insert({ secret });
    return [secret];
  });
}
