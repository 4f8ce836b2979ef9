import { timingSafeEqual } from 'node:crypto';
import type { Knex } from '../db/knex.ts';
import { forReading, forWriting } from '../db/request-transaction.ts';
import type { DataCipher } from '../crypto/data-cipher.ts';
import { CODE_PATTERN, matchingStep, newTotpSecret } from './totp.ts';
import { newRecoveryCodes, normaliseRecoveryCode } from './recovery-codes.ts';

/**
 * Owner of `authenticator_apps` and `recovery_codes`: a customer's second factors. The
 * authenticator app's TOTP secret is kept encrypted (src/crypto/data-cipher.ts), bound to its
 * customer; it is pending until the customer confirms one code, and active from then on.
 * Each accepted code moves the customer's last used time-step forward in one conditional UPDATE,
 * so a code (or an earlier one) is never accepted twice, even when two requests race. Recovery
 * codes are kept as keyed digests and used up by a conditional DELETE, for the same reason.
 *
 * Sign-in uses `secondFactors` (SecondFactors); the Security page uses `twoStepSettings`. Within a
 * request they read and write through the request's transaction (src/db/request-transaction.ts).
 */

const APPS = 'authenticator_apps';
const CODES = 'recovery_codes';

export type CodeCheck =
  { ok: false } | { ok: true; method: 'otp' } | { ok: true; method: 'recovery'; remaining: number };

export interface SecondFactors {
  /** Whether the customer has an authenticator app turned on (confirmed). */
  hasAuthenticatorApp(customerId: string): Promise<boolean>;
  /** A 6-digit authenticator code (±1 step, each time-step usable once per customer, atomically: two
   *  simultaneous submissions of one code cannot both pass) or a recovery code (single use, atomic). */
  verifyCode(customerId: string, code: string, now?: Date): Promise<CodeCheck>;
}

export type TwoStepState = 'off' | 'pending' | 'on';

export interface TwoStepStatus {
  state: TwoStepState;
  /** When it was turned on; set only when on. */
  since: Date | undefined;
  recoveryCodesLeft: number;
}

/** What the Security page does with a customer's second factors. */
export interface TwoStepSettings extends SecondFactors {
  status(customerId: string): Promise<TwoStepStatus>;
  /** The pending secret to show, created if there is none; undefined when the app is already on. */
  startEnrolment(customerId: string): Promise<Buffer | undefined>;
  pendingSecret(customerId: string): Promise<Buffer | undefined>;
  /** Turns the pending app on if `code` is its current code; then the new recovery codes. */
  confirmEnrolment(customerId: string, code: string, now?: Date): Promise<string[] | undefined>;
  /** Removes the app and the recovery codes if `code` is a current or recovery code. */
  turnOff(customerId: string, code: string, now?: Date): Promise<boolean>;
  /** A new set of recovery codes in place of the old one, if `code` is a current or recovery code. */
  replaceRecoveryCodes(customerId: string, code: string, now?: Date): Promise<string[] | undefined>;
}

interface AppRow {
  secret_envelope: string;
  confirmed_at: Date | null;
}

const isCustomerId = (id: string) => /^[0-9a-f-]{36}$/i.test(id);
const secretContext = (customerId: string) => `totp:${customerId}`;
const recoveryContext = (customerId: string) => `recovery:${customerId}`;

type Db = Knex | Knex.Transaction;

function appRow(db: Db, customerId: string): Promise<AppRow | undefined> {
  return db(APPS).where({ customer_id: customerId }).first('secret_envelope', 'confirmed_at');
}

/**
 * Accepts `code` for the customer's app (the active one, or the pending one when confirming) if
 * it belongs to a time-step after the last one used, and records its step in the same statement.
 */
async function useAuthenticatorCode(
  db: Db,
  cipher: DataCipher,
  customerId: string,
  code: string,
  now: Date,
  which: 'active' | 'pending',
): Promise<boolean> {
  const row = await appRow(db, customerId);
  if (!row || (row.confirmed_at === null) !== (which === 'pending')) return false;
  const step = matchingStep(cipher.decrypt(row.secret_envelope, secretContext(customerId)), code, now);
  if (step === undefined) return false;
  const updated = await db(APPS)
    // The same secret as was checked: not one replaced by turning off and on in between.
    .where({ customer_id: customerId, secret_envelope: row.secret_envelope })
    .where((query) => {
      if (which === 'pending') void query.whereNull('confirmed_at');
      else void query.whereNotNull('confirmed_at');
    })
    .where((query) => void query.whereNull('last_used_step').orWhere('last_used_step', '<', step))
    .update({ last_used_step: step, ...(which === 'pending' ? { confirmed_at: db.fn.now() } : {}) });
  return updated === 1;
}

/** Uses up a recovery code; the number left, or undefined if it was not one of the customer's. */
async function useRecoveryCode(
  db: Db,
  cipher: DataCipher,
  customerId: string,
  code: string,
): Promise<number | undefined> {
  const rows: { code_digest: string }[] = await db(CODES)
    .where({ customer_id: customerId })
    .select('code_digest');
  let matched: string | undefined;
  for (const row of rows) {
    if (cipher.matchesDigest(code, recoveryContext(customerId), row.code_digest)) matched ??= row.code_digest;
  }
  if (!matched) return undefined;
  const deleted = await db(CODES).where({ customer_id: customerId, code_digest: matched }).del();
  if (deleted !== 1) return undefined;
  const [left] = await db(CODES).where({ customer_id: customerId }).count<{ count: string }[]>();
  return Number(left?.count ?? 0);
}

async function checkCode(
  db: Db,
  cipher: DataCipher,
  customerId: string,
  code: string,
  now: Date,
): Promise<CodeCheck> {
  if (!isCustomerId(customerId) || code.length > 64) return { ok: false };
  const digits = code.replace(/\s+/g, '');
  if (CODE_PATTERN.test(digits)) {
    return (await useAuthenticatorCode(db, cipher, customerId, digits, now, 'active'))
      ? { ok: true, method: 'otp' }
      : { ok: false };
  }
  const recovery = normaliseRecoveryCode(code);
  const remaining =
    recovery === undefined ? undefined : await useRecoveryCode(db, cipher, customerId, recovery);
  return remaining === undefined ? { ok: false } : { ok: true, method: 'recovery', remaining };
}

async function storeRecoveryCodes(db: Db, cipher: DataCipher, customerId: string): Promise<string[]> {
  const codes = newRecoveryCodes();
  await db(CODES).where({ customer_id: customerId }).del();
  await db(CODES).insert(
    codes.map((code) => ({
      customer_id: customerId,
      code_digest: cipher.digest(code, recoveryContext(customerId)),
    })),
  );
  return codes;
}

async function hasActiveApp(db: Db, customerId: string): Promise<boolean> {
  if (!isCustomerId(customerId)) return false;
  return Boolean(
    await db(APPS).where({ customer_id: customerId }).whereNotNull('confirmed_at').first('customer_id'),
  );
}

export function secondFactors(knex: Knex, cipher: DataCipher): SecondFactors {
  return {
    hasAuthenticatorApp: async (customerId) => hasActiveApp(await forReading(knex), customerId),
    verifyCode: async (customerId, code, now = new Date()) =>
      checkCode(await forWriting(knex), cipher, customerId, code, now),
  };
}

export function twoStepSettings(knex: Knex, cipher: DataCipher): TwoStepSettings {
  return {
    ...secondFactors(knex, cipher),

    async status(customerId) {
      const db = await forReading(knex);
      const row = await appRow(db, customerId);
      const [left] = await db(CODES).where({ customer_id: customerId }).count<{ count: string }[]>();
      const state: TwoStepState = !row ? 'off' : row.confirmed_at ? 'on' : 'pending';
      return { state, since: row?.confirmed_at ?? undefined, recoveryCodesLeft: Number(left?.count ?? 0) };
    },

    async startEnrolment(customerId) {
      const envelope = cipher.encrypt(newTotpSecret(), secretContext(customerId));
      // A pending secret is kept: the customer may already have scanned it.
      await (
        await forWriting(knex)
      )(APPS)
        .insert({ customer_id: customerId, secret_envelope: envelope })
        .onConflict('customer_id')
        .ignore();
      return this.pendingSecret(customerId);
    },

    async pendingSecret(customerId) {
      const row = await appRow(await forReading(knex), customerId);
      if (!row || row.confirmed_at) return undefined;
      return cipher.decrypt(row.secret_envelope, secretContext(customerId));
    },

    async confirmEnrolment(customerId, code, now = new Date()) {
      return (await forWriting(knex)).transaction(async (trx) => {
        const digits = code.replace(/\s+/g, '');
        if (!(await useAuthenticatorCode(trx, cipher, customerId, digits, now, 'pending'))) return undefined;
        return storeRecoveryCodes(trx, cipher, customerId);
      });
    },

    async turnOff(customerId, code, now = new Date()) {
      return (await forWriting(knex)).transaction(async (trx) => {
        if (!(await checkCode(trx, cipher, customerId, code, now)).ok) return false;
        await trx(CODES).where({ customer_id: customerId }).del();
        await trx(APPS).where({ customer_id: customerId }).del();
        return true;
      });
    },

    async replaceRecoveryCodes(customerId, code, now = new Date()) {
      return (await forWriting(knex)).transaction(async (trx) => {
        if (!(await checkCode(trx, cipher, customerId, code, now)).ok) return undefined;
        return storeRecoveryCodes(trx, cipher, customerId);
      });
    },
  };
}

/**
 * Turns an authenticator app on at once with a known secret, replacing any other, and returns its
 * new recovery codes: for the demo's seeded customer, whose secret is printed for a person to add.
 */
export function enrolAuthenticatorApp(
  knex: Knex,
  cipher: DataCipher,
  customerId: string,
  secret: Buffer,
): Promise<string[]> {
  return knex.transaction(async (trx) => {
    const active = {
      secret_envelope: cipher.encrypt(secret, secretContext(customerId)),
      confirmed_at: trx.fn.now(),
      last_used_step: null,
    };
    await trx(APPS)
      .insert({ customer_id: customerId, ...active })
      .onConflict('customer_id')
      .merge(active);
    return storeRecoveryCodes(trx, cipher, customerId);
  });
}

/** Whether the customer's active authenticator app has this secret (the demo's seed checks its file). */
export async function authenticatorAppMatches(
  knex: Knex,
  cipher: DataCipher,
  customerId: string,
  secret: Buffer,
): Promise<boolean> {
  const row = await appRow(knex, customerId);
  if (!row?.confirmed_at) return false;
  const stored = cipher.decrypt(row.secret_envelope, secretContext(customerId));
  return stored.length === secret.length && timingSafeEqual(stored, secret);
}

/**
 * Re-encrypts every authenticator secret sealed under an older data key with the current one
 * (`keys:rewrap`). Each row is replaced only if it is still the envelope just read, so a customer
 * enrolling or turning it off meanwhile wins. Recovery codes are keyed digests of values Passbook
 * never sees again: they cannot be rewrapped, and stay valid while their data key is listed.
 */
export async function rewrapAuthenticatorSecrets(knex: Knex, cipher: DataCipher): Promise<number> {
  const rows = await knex(APPS).select<{ customer_id: string; secret_envelope: string }[]>(
    'customer_id',
    'secret_envelope',
  );
  let rewrapped = 0;
  for (const row of rows) {
    if (cipher.keyIdOf(row.secret_envelope) === cipher.currentKeyId) continue;
    const secret = cipher.decrypt(row.secret_envelope, secretContext(row.customer_id));
    rewrapped += await knex(APPS)
      .where({ customer_id: row.customer_id, secret_envelope: row.secret_envelope })
      .update({ secret_envelope: cipher.encrypt(secret, secretContext(row.customer_id)) });
  }
  return rewrapped;
}
