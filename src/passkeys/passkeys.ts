import type { Knex } from '../db/knex.ts';
import { forReading, forWriting } from '../db/request-transaction.ts';
import { isStorableText } from '../db/storable.ts';

/**
 * Owner of `customer_passkeys` (the customers' WebAuthn credentials: public keys, counters,
 * names) and `passkey_challenges` (the challenges their ceremonies answer, each usable once).
 * Plain storage: the ceremonies themselves are in ceremonies.ts.
 */

const PASSKEYS = 'customer_passkeys';
const CHALLENGES = 'passkey_challenges';

export type DeviceType = 'singleDevice' | 'multiDevice';

export interface Passkey {
  id: string;
  customerId: string;
  credentialId: string;
  publicKey: Uint8Array<ArrayBuffer>;
  counter: number;
  transports: string[];
  deviceType: DeviceType;
  backedUp: boolean;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

interface PasskeyRow {
  id: string;
  customer_id: string;
  credential_id: string;
  public_key: Buffer;
  counter: string | number;
  transports: string[];
  device_type: DeviceType;
  backed_up: boolean;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

const COLUMNS = [
  'id',
  'customer_id',
  'credential_id',
  'public_key',
  'counter',
  'transports',
  'device_type',
  'backed_up',
  'name',
  'created_at',
  'last_used_at',
];

function fromRow(row: PasskeyRow): Passkey {
  return {
    id: row.id,
    customerId: row.customer_id,
    credentialId: row.credential_id,
    publicKey: new Uint8Array(row.public_key),
    counter: Number(row.counter),
    transports: row.transports,
    deviceType: row.device_type,
    backedUp: row.backed_up,
    name: row.name,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

/** The longest passkey name a customer may give; longer ones are the caller's error. */
export const MAX_PASSKEY_NAME_LENGTH = 64;
/** Credential ids are at most 1023 bytes (WebAuthn §5.8.3), so at most 1364 base64url characters. */
const MAX_CREDENTIAL_ID_LENGTH = 1364;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

class InvalidPasskeyError extends Error {
  override name = 'InvalidPasskeyError';
}

export interface NewPasskey {
  customerId: string;
  credentialId: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
  deviceType: DeviceType;
  backedUp: boolean;
  name: string;
}

/** Stores a verified credential; undefined when that credential is already registered. */
export async function addPasskey(knex: Knex, passkey: NewPasskey): Promise<Passkey | undefined> {
  if (!isStorableText(passkey.name, MAX_PASSKEY_NAME_LENGTH) || passkey.name.trim() === '') {
    throw new InvalidPasskeyError(`a passkey's name must be 1 to ${MAX_PASSKEY_NAME_LENGTH} characters`);
  }
  const [row] = await (
    await forWriting(knex)
  )(PASSKEYS)
    .insert({
      customer_id: passkey.customerId,
      credential_id: passkey.credentialId,
      public_key: Buffer.from(passkey.publicKey),
      counter: passkey.counter,
      transports: passkey.transports.filter((transport) => isStorableText(transport, 32)),
      device_type: passkey.deviceType,
      backed_up: passkey.backedUp,
      name: passkey.name.trim(),
    })
    .onConflict('credential_id')
    .ignore()
    .returning<PasskeyRow[]>(COLUMNS);
  return row ? fromRow(row) : undefined;
}

export async function passkeysOfCustomer(knex: Knex, customerId: string): Promise<Passkey[]> {
  if (!UUID.test(customerId)) return [];
  const rows = await (
    await forReading(knex)
  )(PASSKEYS)
    .where({ customer_id: customerId })
    .orderBy([{ column: 'created_at' }, { column: 'id' }])
    .select<PasskeyRow[]>(COLUMNS);
  return rows.map(fromRow);
}

export async function findPasskeyByCredentialId(
  knex: Knex,
  credentialId: string,
): Promise<Passkey | undefined> {
  if (!isStorableText(credentialId, MAX_CREDENTIAL_ID_LENGTH)) return undefined;
  const row = await (
    await forReading(knex)
  )(PASSKEYS)
    .where({ credential_id: credentialId })
    .first<PasskeyRow | undefined>(COLUMNS);
  return row ? fromRow(row) : undefined;
}

/** Removes one of the customer's passkeys; the removed one, or undefined if it was not theirs. */
export async function removePasskey(
  knex: Knex,
  customerId: string,
  id: string,
): Promise<Passkey | undefined> {
  if (!UUID.test(customerId) || !UUID.test(id)) return undefined;
  const [row] = await (
    await forWriting(knex)
  )(PASSKEYS)
    .where({ id, customer_id: customerId })
    .delete()
    .returning<PasskeyRow[]>(COLUMNS);
  return row ? fromRow(row) : undefined;
}

/**
 * Records a sign-in with a passkey. The counter moves only forwards: the update happens only if
 * the stored counter is still the one the assertion was checked against (or both are zero, for
 * authenticators that keep no counter), so two requests racing with one assertion cannot both win.
 */
export async function recordPasskeyUse(
  knex: Knex,
  passkey: Passkey,
  use: { newCounter: number; backedUp: boolean },
): Promise<boolean> {
  const db = await forWriting(knex);
  const updated = await db(PASSKEYS)
    .where({ id: passkey.id, counter: passkey.counter })
    .andWhere((query) => {
      void query.where('counter', '<', use.newCounter).orWhere((zero) => {
        void zero.where('counter', 0).andWhereRaw('?::bigint = 0', [use.newCounter]);
      });
    })
    .update({ counter: use.newCounter, backed_up: use.backedUp, last_used_at: db.fn.now() });
  return updated === 1;
}

export type ChallengePurpose = 'registration' | 'authentication';

export interface IssuedChallenge {
  challenge: string;
  purpose: ChallengePurpose;
  /** What the challenge is bound to: the interaction, the sign-in form's browser, or the session. */
  binding: string;
  customerId?: string | undefined;
  expiresAt: Date;
}

export async function storeChallenge(knex: Knex, issued: IssuedChallenge): Promise<void> {
  // Unanswered challenges are cleared here rather than by a timer of their own.
  const db = await forWriting(knex);
  await db(CHALLENGES).where('expires_at', '<', db.fn.now()).delete();
  await db(CHALLENGES).insert({
    challenge: issued.challenge,
    purpose: issued.purpose,
    binding: issued.binding,
    customer_id: issued.customerId ?? null,
    expires_at: issued.expiresAt,
  });
}

/**
 * Takes a challenge for answering: true at most once, only before it expires, only for the
 * purpose, binding and customer it was issued for. It is gone afterwards whatever the answer.
 */
export async function consumeChallenge(
  knex: Knex,
  challenge: string,
  expected: { purpose: ChallengePurpose; binding: string; customerId?: string | undefined },
): Promise<boolean> {
  if (!isStorableText(challenge, 256) || !isStorableText(expected.binding, 1024)) return false;
  const [row] = await (
    await forWriting(knex)
  )(CHALLENGES)
    .where({ challenge })
    .delete()
    .returning<{ purpose: string; binding: string; customer_id: string | null; expires_at: Date }[]>('*');
  if (!row) return false;
  return (
    row.purpose === expected.purpose &&
    row.binding === expected.binding &&
    row.customer_id === (expected.customerId ?? null) &&
    row.expires_at.getTime() > Date.now()
  );
}
