import { randomBytes } from 'node:crypto';

/**
 * Recovery codes: ten single-use codes of ten characters (50 bits from the CSPRNG each), shown as
 * `k7pq-3mzt-x9`. The alphabet is Crockford's base32: no i, l, o or u, so what the customer
 * reads off paper is what they type; the look-alikes are read as the digits they resemble.
 */

const RECOVERY_CODE_COUNT = 10;
const LENGTH = 10;
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const LOOK_ALIKES: Record<string, string> = { i: '1', l: '1', o: '0' };

function newCode(): string {
  // 256 is a multiple of 32, so masking each byte to five bits keeps every character equally likely.
  return [...randomBytes(LENGTH)].map((byte) => ALPHABET[byte & 31]).join('');
}

export function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, newCode);
}

/** `k7pq3mztx9` as the customer sees it: `k7pq-3mzt-x9`. */
export function formatRecoveryCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`;
}

/** What was typed, as stored: spaces and dashes dropped, any case; undefined if it cannot be one. */
export function normaliseRecoveryCode(typed: string): string | undefined {
  const code = typed
    .toLowerCase()
    .replace(/[\s-]+/g, '')
    .replace(/[ilo]/g, (character) => LOOK_ALIKES[character] ?? character);
  if (code.length !== LENGTH || [...code].some((character) => !ALPHABET.includes(character)))
    return undefined;
  return code;
}
