import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * "This browser gave the right password for this customer a moment ago": what the second step of
 * a sign-in needs to know, carried in the code form itself instead of being stored. It is an HMAC
 * under the cookie keys of the customer, the time and what it is bound to (the interaction's uid,
 * or the account pages' sign-in nonce, both tied to this browser by a signed cookie), so it cannot
 * be minted, moved to another browser, or used after `PENDING_SIGN_IN_SECONDS`.
 */

const PENDING_SIGN_IN_SECONDS = 5 * 60;

function mac(key: string, binding: string, customerId: string, issuedAt: number): string {
  return createHmac('sha256', key)
    .update(`pending-sign-in\0${binding}\0${customerId}\0${issuedAt}`)
    .digest('base64url');
}

export function pendingSignIn(
  keys: readonly string[],
  binding: string,
  customerId: string,
  now = Date.now(),
): string {
  const [current] = keys;
  if (!current) throw new Error('no cookie key to sign a pending sign-in with');
  const issuedAt = Math.floor(now / 1000);
  return `${customerId}.${issuedAt}.${mac(current, binding, customerId, issuedAt)}`;
}

/** The customer whose password was verified, if the token is genuine, bound here and still fresh. */
export function verifiedPendingSignIn(
  keys: readonly string[],
  binding: string,
  token: string,
  now = Date.now(),
): string | undefined {
  const [customerId, issued, presented] = token.split('.');
  if (!customerId || !issued || !presented || !/^\d{1,12}$/.test(issued)) return undefined;
  const issuedAt = Number(issued);
  const age = Math.floor(now / 1000) - issuedAt;
  if (age < 0 || age > PENDING_SIGN_IN_SECONDS) return undefined;
  const offered = Buffer.from(presented);
  const genuine = keys.some((key) => {
    const expected = Buffer.from(mac(key, binding, customerId, issuedAt));
    return expected.length === offered.length && timingSafeEqual(expected, offered);
  });
  return genuine ? customerId : undefined;
}
