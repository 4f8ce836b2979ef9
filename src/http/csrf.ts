import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Synchronizer CSRF tokens derived from server-side state: an HMAC, under the cookie keys, of
 * what the form acts on (an interaction's uid, a session's id). Nothing to store, nothing an
 * attacker can mint for a victim's interaction or session, and rotation of the keys is honoured.
 */

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
