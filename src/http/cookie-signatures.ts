import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Owns how the bank's signed cookies are signed and checked: the `<name>.sig` cookie beside each
 * of the engine's cookies and our own, under COOKIE_KEYS, the first of which signs and all of
 * which verify (so that a key can be rotated in without signing anyone out).
 *
 * The signature is the one the cookies library's default signer makes (HMAC-SHA-1 of
 * `name=value`, base64url), so cookies signed by a node of an earlier release stay valid. It is
 * checked with one constant-time comparison of the two digests: the default signer compares by
 * two more HMACs under a fresh random key, which made the checks of a sign-in flow's cookies a
 * twentieth of the flow's CPU besides the password hash.
 */

/** What the cookies library (and so Koa and the engine) call on the keys they are given. */
export interface CookieSignatures {
  sign(data: string): string;
  verify(data: string, digest: string): boolean;
  /** The position of the key that made `digest`, or -1. */
  index(data: string, digest: string): number;
}

function digestUnder(key: string, data: string): Buffer {
  return createHmac('sha1', key).update(data).digest();
}

export function cookieSignatures(keys: readonly string[]): CookieSignatures {
  const [signingKey] = keys;
  if (signingKey === undefined) throw new Error('cookie signatures need at least one key');
  const index = (data: string, digest: string): number => {
    const presented = Buffer.from(digest, 'base64url');
    // base64url decoding skips what is not base64url: only the digest's canonical text counts.
    if (presented.toString('base64url') !== digest) return -1;
    return keys.findIndex((key) => {
      const expected = digestUnder(key, data);
      return presented.length === expected.length && timingSafeEqual(presented, expected);
    });
  };
  return {
    sign: (data) => digestUnder(signingKey, data).toString('base64url'),
    verify: (data, digest) => index(data, digest) !== -1,
    index,
  };
}
