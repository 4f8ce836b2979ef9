import { dataCipher, DataCipherError, generateDataKey } from '../../src/crypto/data-cipher.ts';

/** Encryption at rest: what a stored envelope looks like, and what it refuses to open. */

const key = generateDataKey();
const cipher = dataCipher([key]);

test('an envelope is v1.<kid>.<iv>.<ciphertext+tag> in base64url and opens to the plaintext', () => {
  const envelope = cipher.encrypt('the secret', 'totp:customer-1');
  expect(envelope).toMatch(/^v1\.[\w-]{8}\.[\w-]{16}\.[\w-]+$/);
  expect(envelope.split('.')[1]).toBe(cipher.currentKeyId);
  expect(envelope).not.toContain(Buffer.from('the secret').toString('base64url'));
  expect(cipher.decrypt(envelope, 'totp:customer-1').toString()).toBe('the secret');
});

test('the same plaintext encrypts differently every time (a fresh IV)', () => {
  expect(cipher.encrypt('same', 'c')).not.toBe(cipher.encrypt('same', 'c'));
});

test('an envelope opened for another context (another row) is refused loudly', () => {
  const envelope = cipher.encrypt('the secret', 'totp:customer-1');
  expect(() => cipher.decrypt(envelope, 'totp:customer-2')).toThrow(DataCipherError);
  expect(() => cipher.decrypt(envelope, 'totp:customer-2')).toThrow(/failed authentication/);
});

test('a changed ciphertext, tag or IV is refused loudly', () => {
  const envelope = cipher.encrypt('the secret', 'c');
  const [version, kid, iv = '', sealed = ''] = envelope.split('.');
  const flip = (part: string) => {
    const bytes = Buffer.from(part, 'base64url');
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    return bytes.toString('base64url');
  };
  const lastFlipped = (() => {
    const bytes = Buffer.from(sealed, 'base64url');
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    return bytes.toString('base64url');
  })();
  for (const tampered of [
    [version, kid, iv, flip(sealed)],
    [version, kid, iv, lastFlipped],
    [version, kid, flip(iv), sealed],
  ]) {
    expect(() => cipher.decrypt(tampered.join('.'), 'c')).toThrow(DataCipherError);
  }
});

test('another key cannot open it, and says which key it needs', () => {
  const envelope = cipher.encrypt('the secret', 'c');
  const other = dataCipher([generateDataKey()]);
  expect(() => other.decrypt(envelope, 'c')).toThrow(/DATA_ENCRYPTION_KEY does not list/);
  const relabelled = envelope.replace(cipher.currentKeyId, other.currentKeyId);
  expect(() => other.decrypt(relabelled, 'c')).toThrow(/failed authentication/);
});

test('malformed envelopes are refused', () => {
  for (const bad of ['', 'plaintext', 'v2.a.b.c', 'v1.a.b', `${cipher.encrypt('x', 'c')}.extra`]) {
    expect(() => cipher.decrypt(bad, 'c')).toThrow(DataCipherError);
  }
});

test('after a rotation the new key encrypts and the old one still opens what it sealed', () => {
  const sealedBefore = cipher.encrypt('old', 'c');
  const rotated = dataCipher([generateDataKey(), key]);
  expect(rotated.currentKeyId).not.toBe(cipher.currentKeyId);
  expect(rotated.decrypt(sealedBefore, 'c').toString()).toBe('old');
  expect(rotated.keyIdOf(sealedBefore)).toBe(cipher.currentKeyId);
  expect(rotated.keyIdOf(rotated.encrypt('new', 'c'))).toBe(rotated.currentKeyId);
});

test('a keyed digest matches only its value in its context, under any listed key', () => {
  const digest = cipher.digest('k7pq3mztx9', 'recovery:1');
  expect(digest).toMatch(/^d1\.[\w-]{8}\.[\w-]{43}$/);
  expect(cipher.matchesDigest('k7pq3mztx9', 'recovery:1', digest)).toBe(true);
  expect(cipher.matchesDigest('k7pq3mztx8', 'recovery:1', digest)).toBe(false);
  expect(cipher.matchesDigest('k7pq3mztx9', 'recovery:2', digest)).toBe(false);
  expect(dataCipher([generateDataKey()]).matchesDigest('k7pq3mztx9', 'recovery:1', digest)).toBe(false);
  expect(dataCipher([generateDataKey(), key]).matchesDigest('k7pq3mztx9', 'recovery:1', digest)).toBe(true);
  expect(cipher.matchesDigest('k7pq3mztx9', 'recovery:1', 'garbage')).toBe(false);
});

test('a key must be 32 bytes, and there must be one', () => {
  expect(() => dataCipher([Buffer.alloc(16)])).toThrow(DataCipherError);
  expect(() => dataCipher([])).toThrow(DataCipherError);
});

test('a derived secret is 32 bytes, the same for the same key and purpose, and differs otherwise', () => {
  const secret = cipher.derivedSecret('passbook dpop nonce');
  expect(secret).toHaveLength(32);
  expect(dataCipher([key]).derivedSecret('passbook dpop nonce')).toEqual(secret);
  expect(cipher.derivedSecret('another purpose')).not.toEqual(secret);
  // It follows the current key: after a rotation it changes.
  expect(dataCipher([generateDataKey(), key]).derivedSecret('passbook dpop nonce')).not.toEqual(secret);
  // Never the key itself.
  expect(secret).not.toEqual(key);
});
