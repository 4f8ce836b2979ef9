import type { JWK } from 'jose';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { Knex } from '../db/knex.ts';
import type { DataCipher } from '../crypto/data-cipher.ts';
import { generateSecret } from '../config.ts';
import { LOCKS } from '../db/locks.ts';

/**
 * Owner of `signing_keys` and `cookie_keys`: the secrets every Passbook process must share.
 * They are created on the first start, under an advisory lock so that two processes starting
 * together cannot both create them.
 *
 * A signing key lives through four states: `next` (published, never signs), `active` (signs; one
 * per algorithm), `retiring` (published for verification only, as `key_ops: ['verify']`) and
 * `retired` (gone from the JWKS, its private part destroyed). Time moves a `next` key on when its
 * `activate_after` passes; whichever process reads the keys first after that makes the change,
 * under the lock, so every process agrees. Private JWKs are stored only as envelopes under
 * DATA_ENCRYPTION_KEY (context `signing-key:<kid>`).
 */

/** The algorithms the bank signs with; the first is the default for ID tokens. */
export const SIGNING_ALGORITHMS = ['RS256', 'ES256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

type KeyState = 'next' | 'active' | 'retiring' | 'retired';

/** What `keys:list` shows of a key: never its private part. */
export interface SigningKeyInfo {
  kid: string;
  alg: string;
  state: KeyState;
  created_at: string;
  activate_after: string | null;
  activated_at: string | null;
  /** When it stopped signing (became `retiring`). */
  deactivated_at: string | null;
  retired_at: string | null;
}

/** A key operation refused because of the key's state or age; the CLI prints its message. */
export class SigningKeyError extends Error {
  override name = 'SigningKeyError';
}

const TABLE = 'signing_keys';
const context = (kid: string) => `signing-key:${kid}`;

interface KeyRow {
  kid: string;
  alg: string;
  state: KeyState;
  private_jwk_envelope: string | null;
  created_at: Date;
  activate_after: Date | null;
  activated_at: Date | null;
  deactivated_at: Date | null;
  retired_at: Date | null;
}

const STATE_ORDER: Record<KeyState, number> = { active: 0, next: 1, retiring: 2, retired: 3 };

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

// Rows written before keys were encrypted: sealed here because SQL cannot encrypt.
async function sealPlaintextKeys(trx: Knex.Transaction, cipher: DataCipher): Promise<void> {
  const rows = await trx(TABLE)
    .whereNotNull('private_jwk')
    .select<{ kid: string; private_jwk: JWK }[]>('kid', 'private_jwk');
  for (const row of rows) {
    await trx(TABLE)
      .where({ kid: row.kid })
      .update({
        private_jwk_envelope: cipher.encrypt(JSON.stringify(row.private_jwk), context(row.kid)),
        private_jwk: null,
      });
  }
}

async function makeActive(trx: Knex.Transaction, kid: string, alg: string): Promise<void> {
  await trx(TABLE)
    .where({ alg, state: 'active' })
    .update({ state: 'retiring', deactivated_at: trx.fn.now() });
  await trx(TABLE).where({ kid }).update({
    state: 'active',
    activated_at: trx.fn.now(),
    activate_after: null,
    deactivated_at: null,
  });
}

async function activateDueKeys(trx: Knex.Transaction): Promise<void> {
  const due = await trx(TABLE)
    .where({ state: 'next' })
    .andWhere('activate_after', '<=', trx.fn.now())
    .orderBy([{ column: 'activate_after' }, { column: 'created_at' }])
    .select<{ kid: string; alg: string }[]>('kid', 'alg');
  for (const row of due) await makeActive(trx, row.kid, row.alg);
}

async function insertKey(
  trx: Knex.Transaction,
  cipher: DataCipher,
  jwk: JWK & { kid: string },
  alg: SigningAlgorithm,
  fields: { state: 'active' } | { state: 'next'; activateAfterSeconds: number | null },
): Promise<void> {
  await trx(TABLE).insert({
    kid: jwk.kid,
    alg,
    state: fields.state,
    private_jwk_envelope: cipher.encrypt(JSON.stringify(jwk), context(jwk.kid)),
    activated_at: fields.state === 'active' ? trx.fn.now() : null,
    activate_after:
      fields.state === 'next' && fields.activateAfterSeconds !== null
        ? trx.raw(`now() + make_interval(secs => ?)`, [fields.activateAfterSeconds])
        : null,
  });
}

/** Seals plaintext rows, applies activations that are due, creates any missing algorithm's key. */
async function settle(trx: Knex.Transaction, cipher: DataCipher): Promise<void> {
  await sealPlaintextKeys(trx, cipher);
  await activateDueKeys(trx);
  const active = await trx(TABLE).where({ state: 'active' }).pluck<string[]>('alg');
  for (const alg of SIGNING_ALGORITHMS) {
    if (active.includes(alg)) continue;
    const jwk = await generateSigningKey(alg);
    await insertKey(trx, cipher, { ...jwk, kid: String(jwk.kid) }, alg, { state: 'active' });
  }
}

function openKey(cipher: DataCipher, row: KeyRow): JWK {
  if (!row.private_jwk_envelope) throw new Error(`signing key ${row.kid} has no private part`);
  const jwk = JSON.parse(cipher.decrypt(row.private_jwk_envelope, context(row.kid)).toString('utf8')) as JWK;
  return row.state === 'retiring' ? { ...jwk, key_ops: ['verify'] } : jwk;
}

/**
 * The private JWKs for the provider, in the order it needs: the active key of each algorithm
 * first (the engine signs with the first match), then `next` keys, then `retiring` ones marked
 * verify-only; retired keys are left out. Creates an active key for an algorithm that has none.
 */
export async function loadSigningKeys(knex: Knex, cipher: DataCipher): Promise<JWK[]> {
  const rows = await withCreationLock(knex, async (trx) => {
    await settle(trx, cipher);
    return trx(TABLE).whereNot({ state: 'retired' }).select<KeyRow[]>('*');
  });
  rows.sort(
    (a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || b.created_at.getTime() - a.created_at.getTime(),
  );
  return rows.map((row) => openKey(cipher, row));
}

const iso = (date: Date | null) => (date ? date.toISOString() : null);

function info(row: KeyRow): SigningKeyInfo {
  return {
    kid: row.kid,
    alg: row.alg,
    state: row.state,
    created_at: row.created_at.toISOString(),
    activate_after: iso(row.activate_after),
    activated_at: iso(row.activated_at),
    deactivated_at: iso(row.deactivated_at),
    retired_at: iso(row.retired_at),
  };
}

/** Every key, retired ones included, by state (active, next, retiring, retired) and newest first. */
export async function listSigningKeys(knex: Knex, cipher: DataCipher): Promise<SigningKeyInfo[]> {
  const rows = await withCreationLock(knex, async (trx) => {
    await settle(trx, cipher);
    return trx(TABLE).select<KeyRow[]>('*');
  });
  rows.sort(
    (a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || b.created_at.getTime() - a.created_at.getTime(),
  );
  return rows.map(info);
}

// The database's clock, which stamped the row.
async function atLeastAgo(trx: Knex.Transaction, time: Date | null, seconds: number): Promise<boolean> {
  const result = await trx.raw<{ rows: { old_enough: boolean }[] }>(
    'SELECT ?::timestamptz <= now() - make_interval(secs => ?) AS old_enough',
    [time, seconds],
  );
  return result.rows[0]?.old_enough === true;
}

async function keyRow(trx: Knex.Transaction, kid: string): Promise<KeyRow> {
  const row = await trx(TABLE).where({ kid }).first<KeyRow | undefined>('*');
  if (!row) throw new SigningKeyError(`no signing key "${kid}"`);
  return row;
}

/**
 * A new `next` key for `alg`: published at once, signing after `activateAfterSeconds` (or, with
 * null, only at `activateSigningKey`). One pending key per algorithm at a time.
 */
export async function rotateSigningKey(
  knex: Knex,
  cipher: DataCipher,
  alg: SigningAlgorithm,
  activateAfterSeconds: number | null,
): Promise<SigningKeyInfo> {
  const jwk = await generateSigningKey(alg);
  const kid = String(jwk.kid);
  return withCreationLock(knex, async (trx) => {
    await settle(trx, cipher);
    const pending = await trx(TABLE).where({ alg, state: 'next' }).first<{ kid: string } | undefined>('kid');
    if (pending) {
      throw new SigningKeyError(
        `${alg} key ${pending.kid} is already waiting to sign: activate or retire it first`,
      );
    }
    await insertKey(trx, cipher, { ...jwk, kid }, alg, { state: 'next', activateAfterSeconds });
    return info(await keyRow(trx, kid));
  });
}

/**
 * Makes a `next` key (or, to roll back, a `retiring` one) sign now; the active one becomes
 * retiring. A `next` key must have been published for `minPublishedSeconds` (every process has
 * re-read the keys since), unless `force`.
 */
export async function activateSigningKey(
  knex: Knex,
  cipher: DataCipher,
  kid: string,
  { minPublishedSeconds, force }: { minPublishedSeconds: number; force: boolean },
): Promise<SigningKeyInfo> {
  return withCreationLock(knex, async (trx) => {
    await settle(trx, cipher);
    const row = await keyRow(trx, kid);
    if (row.state === 'active') throw new SigningKeyError(`signing key ${kid} is already active`);
    if (row.state === 'retired') throw new SigningKeyError(`signing key ${kid} is retired for good`);
    if (row.state === 'next' && !force && !(await atLeastAgo(trx, row.created_at, minPublishedSeconds))) {
      throw new SigningKeyError(
        `signing key ${kid} was published at ${row.created_at.toISOString()}; other processes may not publish it until ${minPublishedSeconds} s later (KEY_REFRESH_INTERVAL), so it may sign only then (--force to activate it anyway)`,
      );
    }
    await makeActive(trx, kid, row.alg);
    return info(await keyRow(trx, kid));
  });
}

/**
 * Ends a key: unpublished, its private part destroyed. Only a `retiring` key that stopped
 * signing at least `minAgeSeconds` ago (everything it signed has expired), or a `next` key
 * that never signed; `force` skips the age check.
 */
export async function retireSigningKey(
  knex: Knex,
  kid: string,
  { minAgeSeconds, force }: { minAgeSeconds: number; force: boolean },
): Promise<SigningKeyInfo> {
  return withCreationLock(knex, async (trx) => {
    const row = await keyRow(trx, kid);
    if (row.state === 'active') {
      throw new SigningKeyError(`signing key ${kid} is active: rotate and activate another first`);
    }
    if (row.state === 'retired') throw new SigningKeyError(`signing key ${kid} is already retired`);
    if (row.state === 'retiring' && !force) {
      if (!(await atLeastAgo(trx, row.deactivated_at, minAgeSeconds))) {
        throw new SigningKeyError(
          `signing key ${kid} stopped signing at ${iso(row.deactivated_at)}; what it signed lives up to ${minAgeSeconds} s, so it may be retired only after that (--force to retire it anyway)`,
        );
      }
    }
    await trx(TABLE)
      .where({ kid })
      .update({ state: 'retired', retired_at: trx.fn.now(), private_jwk_envelope: null, private_jwk: null });
    return info(await keyRow(trx, kid));
  });
}

/** Re-encrypts every signing key sealed under an older data key with the current one. */
export async function rewrapSigningKeys(knex: Knex, cipher: DataCipher): Promise<number> {
  return withCreationLock(knex, async (trx) => {
    await settle(trx, cipher);
    const rows = await trx(TABLE)
      .whereNotNull('private_jwk_envelope')
      .select<{ kid: string; private_jwk_envelope: string }[]>('kid', 'private_jwk_envelope');
    let rewrapped = 0;
    for (const row of rows) {
      if (cipher.keyIdOf(row.private_jwk_envelope) === cipher.currentKeyId) continue;
      const plaintext = cipher.decrypt(row.private_jwk_envelope, context(row.kid));
      await trx(TABLE)
        .where({ kid: row.kid })
        .update({ private_jwk_envelope: cipher.encrypt(plaintext, context(row.kid)) });
      rewrapped += 1;
    }
    return rewrapped;
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
