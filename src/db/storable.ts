/**
 * Which request-supplied values PostgreSQL can take, checked before they reach SQL by the module
 * that owns the query. PostgreSQL refuses U+0000 in text and jsonb ("invalid byte sequence for
 * encoding UTF8: 0x00", "unsupported Unicode escape sequence") and a lone surrogate in jsonb, and
 * a text column silently turns a lone surrogate into U+FFFD, so a lookup with one would match
 * another value. Such a value can never be stored, so a lookup of one finds nothing, and a write
 * of one is the caller's error.
 */

/**
 * The longest identifier (model id, uid, grant id, user code, client id) taken from a request.
 * oidc-provider's own ids are 21 to 43 characters and the bank's client ids are shorter; 512
 * leaves room for any a future client may carry while keeping every one well inside the
 * ~2,700 bytes a btree index entry may hold.
 */
export const MAX_IDENTIFIER_LENGTH = 512;

/** A UTF-16 surrogate that is not half of a pair (the `u` flag reads a pair as one code point). */
const LONE_SURROGATE = /\p{Cs}/u;

function hasUnstorableCharacter(text: string): boolean {
  return text.includes('\u0000') || LONE_SURROGATE.test(text);
}

/** Whether `value` is a string PostgreSQL stores exactly as given, of at most `maxLength` code units. */
export function isStorableText(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length <= maxLength && !hasUnstorableCharacter(value);
}

/** Whether every string in a JSON-like value (object keys included) is storable in jsonb. */
export function isStorableJson(value: unknown): boolean {
  if (typeof value === 'string') return !hasUnstorableCharacter(value);
  if (Array.isArray(value)) return value.every(isStorableJson);
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).every(
      ([key, member]) => !hasUnstorableCharacter(key) && isStorableJson(member),
    );
  }
  return true;
}
