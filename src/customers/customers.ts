import type { Knex } from '../db/knex.ts';
import {
  forReading,
  forWritingTable,
  hasWritten,
  outsideRequestTransaction,
} from '../db/request-transaction.ts';
import type { CustomerCopies } from './customer-copies.ts';
import { isStorableText } from '../db/storable.ts';
import { preparedRaw } from '../db/prepared.ts';
import {
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  dummyPasswordHash,
  hashPassword,
  needsRehash,
  verifyPassword,
} from './passwords.ts';

/**
 * Owner of `customers`: the bank's customers, their password hashes and their profile claims.
 * argon2id runs holding no transaction (`argon2`): a request's writes before it commit first.
 */

const TABLE = 'customers';

function argon2<T>(knex: Knex, work: () => Promise<T>): Promise<T> {
  return outsideRequestTransaction(knex, work);
}

export interface NewCustomer {
  username: string;
  password: string;
  name?: string | undefined;
  email?: string | undefined;
}

export interface Customer {
  id: string;
  username: string;
  name: string | null;
  email: string | null;
  email_verified: boolean;
  updated_at: Date;
}

export class InvalidCustomerError extends Error {
  override name = 'InvalidCustomerError';
}

const MAX_USERNAME_LENGTH = 64;
const USERNAME_PATTERN = /^[a-zA-Z0-9._@-]{3,64}$/;
const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function assertValidCustomer(customer: NewCustomer): void {
  if (!USERNAME_PATTERN.test(customer.username)) {
    throw new InvalidCustomerError('username must be 3 to 64 letters, digits or . _ @ -');
  }
  if (customer.password.length < MIN_PASSWORD_LENGTH || customer.password.length > MAX_PASSWORD_LENGTH) {
    throw new InvalidCustomerError(
      `password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters`,
    );
  }
  if (customer.email !== undefined && !EMAIL_PATTERN.test(customer.email)) {
    throw new InvalidCustomerError('email must be an email address');
  }
}

export async function createCustomer(knex: Knex, customer: NewCustomer): Promise<Customer> {
  assertValidCustomer(customer);
  const passwordHash = await argon2(knex, () => hashPassword(customer.password));
  const db = await forWritingTable(knex, TABLE);
  const [created] = await db(TABLE)
    .insert({
      username: customer.username,
      password_hash: passwordHash,
      name: customer.name ?? null,
      email: customer.email ?? null,
    })
    .onConflict(db.raw('(lower(username))'))
    .ignore()
    .returning<Customer[]>(['id', 'username', 'name', 'email', 'email_verified', 'updated_at']);
  if (!created) throw new InvalidCustomerError(`username "${customer.username}" is taken`);
  return created;
}

export async function findCustomerByUsername(knex: Knex, username: string): Promise<Customer | undefined> {
  // Usernames come from sign-in forms; one that could never be registered (a NUL, too long) is no one.
  if (!isStorableText(username, MAX_USERNAME_LENGTH)) return undefined;
  const db = await forReading(knex);
  return db(TABLE)
    .whereRaw('lower(username) = lower(?)', [username])
    .first('id', 'username', 'name', 'email', 'email_verified', 'updated_at');
}

// Every token request and UserInfo call looks the customer up: prepared (src/db/prepared.ts).
const FIND_BY_ID = `SELECT id, username, name, email, email_verified, updated_at FROM ${TABLE} WHERE id = ?`;

export async function findCustomerById(knex: Knex, id: string): Promise<Customer | undefined> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
  const db = await forReading(knex);
  const { rows } = await preparedRaw<{ rows: Customer[] }>(db, FIND_BY_ID, [id]);
  return rows[0];
}

/**
 * The customer `id` as the token endpoint, UserInfo and the consent screens read it: from the
 * process's copies (customer-copies.ts) where it keeps them, unless this request has written
 * customers itself.
 */
export function findCustomer(
  knex: Knex,
  id: string,
  copies: CustomerCopies | undefined,
): Promise<Customer | undefined> {
  if (!copies || hasWritten(knex, TABLE) || !/^[0-9a-f-]{36}$/i.test(id)) return findCustomerById(knex, id);
  return copies.find(id.toLowerCase(), () => findCustomerById(knex, id));
}

/**
 * What a password check found: the customer when the password is right; otherwise the customer
 * the name belongs to, if any, so that the failure can go into their activity without a second
 * lookup.
 */
export type CredentialCheck =
  { verified: true; customerId: string } | { verified: false; knownCustomerId: string | undefined };

/**
 * Checks a username and password. An unknown username is checked against a dummy hash, so both
 * failures take the same time here and look the same to the caller's caller.
 */
export async function verifyCredentials(
  knex: Knex,
  username: string,
  password: string,
): Promise<CredentialCheck> {
  const row: { id: string; password_hash: string } | undefined = USERNAME_PATTERN.test(username)
    ? await (
        await forReading(knex)
      )(TABLE)
        .whereRaw('lower(username) = lower(?)', [username])
        .first('id', 'password_hash')
    : undefined;
  const matches = await argon2(knex, async () =>
    verifyPassword(row?.password_hash ?? (await dummyPasswordHash()), password),
  );
  if (!row || !matches) return { verified: false, knownCustomerId: row?.id };
  if (needsRehash(row.password_hash)) {
    const rehashed = await argon2(knex, () => hashPassword(password));
    const db = await forWritingTable(knex, TABLE);
    await db(TABLE).where({ id: row.id }).update({ password_hash: rehashed, updated_at: db.fn.now() });
  }
  return { verified: true, customerId: row.id };
}

export type PasswordChange = 'changed' | 'wrong_password';

/**
 * Changes a customer's password when the current one is right; anything else leaves it as it
 * was. The update names the hash it checked, so a change made meanwhile is never overwritten.
 * A new password of the wrong length is an InvalidCustomerError, thrown before anything is checked.
 */
export async function changePassword(
  knex: Knex,
  customerId: string,
  currentPassword: string,
  newPassword: string,
): Promise<PasswordChange> {
  if (newPassword.length < MIN_PASSWORD_LENGTH || newPassword.length > MAX_PASSWORD_LENGTH) {
    throw new InvalidCustomerError(
      `password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters`,
    );
  }
  if (!/^[0-9a-f-]{36}$/i.test(customerId)) return 'wrong_password';
  const row: { password_hash: string } | undefined = await (
    await forReading(knex)
  )(TABLE)
    .where({ id: customerId })
    .first('password_hash');
  if (!row || !(await argon2(knex, () => verifyPassword(row.password_hash, currentPassword)))) {
    return 'wrong_password';
  }
  const newHash = await argon2(knex, () => hashPassword(newPassword));
  const db = await forWritingTable(knex, TABLE);
  const updated = await db(TABLE)
    .where({ id: customerId, password_hash: row.password_hash })
    .update({ password_hash: newHash, updated_at: db.fn.now() });
  return updated === 1 ? 'changed' : 'wrong_password';
}

/** Standard OpenID Connect claims for a customer; the provider filters them by granted scope. */
export function standardClaims(customer: Customer): { sub: string; [claim: string]: unknown } {
  return {
    sub: customer.id,
    name: customer.name ?? undefined,
    preferred_username: customer.username,
    updated_at: Math.floor(customer.updated_at.getTime() / 1000),
    email: customer.email ?? undefined,
    email_verified: customer.email ? customer.email_verified : undefined,
  };
}
