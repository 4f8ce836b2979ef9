import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Synchronizer CSRF tokens derived from server-side state: an HMAC, under the cookie keys, of
 * what the form acts on (an interaction's uid, a session's id). Nothing to store, nothing an
 * attacker can mint for a victim's interaction or session, and rotation of the keys is honoured.
 */

/**
 * What each family of forms binds its tokens to, so that one form's token never passes another's
 * check. Every page and JSON call of a family uses the same one (src/passkeys/ included).
 */
export const CSRF_PURPOSES = {
  /** An app's sign-in and consent screens, bound to the interaction's uid. */
  interaction: 'interaction',
  /** The account pages' sign-in, bound to a nonce cookie set before any session exists. */
  accountSignIn: 'account-sign-in',
  /** The account pages, bound to the bank session's uid. */
  account: 'account',
  /** The Security section, bound to the bank session's uid. */
  accountSecurity: 'account-security',
} as const;

/** The account sign-in form's nonce cookie (see CSRF_PURPOSES.accountSignIn). */
export const ACCOUNT_SIGN_IN_NONCE_COOKIE = 'passbook_signin';

function sign(key: string, purpose: string, binding: string): string {
  return createHmac('sha256', key).update(`${purpose}\0${binding}`).digest('base64url');
}

export function csrfToken(keys: readonly string[], purpose: string, binding: string): string {
  const [current] = keys;
  if (!current) throw new Error('no cookie key to sign CSRF tokens with');
  return sign(current, purpose, binding);
}

export function isValidCsrfToken(
  keys: readonly string[],
  purpose: string,
  binding: string,
  presented: unknown,
): boolean {
  if (typeof presented !== 'string' || presented.length === 0) return false;
  const offered = Buffer.from(presented);
  return keys.some((key) => {
    const expected = Buffer.from(sign(key, purpose, binding));
    return expected.length === offered.length && timingSafeEqual(expected, offered);
  });
}
