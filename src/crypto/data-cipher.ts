import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

/**
 * Encryption of data at rest: AES-256-GCM under DATA_ENCRYPTION_KEY, for secrets Passbook must
 * read back (authenticator secrets and private signing keys), and keyed digests (HMAC-SHA-256) for
 * secrets it only ever compares (recovery codes). Pure functions over keys; no storage.
 *
 * An envelope is `v1.<kid>.<iv>.<ciphertext+tag>`, base64url. The key id names the key that
 * sealed it, so a rotation can add a key in front and re-encrypt ("rewrap") at leisure: every
 * listed key still opens what it sealed. The additional authenticated data binds the envelope's
 * header and a context string (e.g. `totp:<customerId>`), so a ciphertext copied to another row
 * or re-labelled with another key id fails to open.
 */

const VERSION = 'v1';
const DIGEST_VERSION = 'd1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

export class DataCipherError extends Error {
  override name = 'DataCipherError';
}

export interface DataCipher {
  /** The id of the key that encrypts now; an envelope naming another is due for rewrapping. */
  readonly currentKeyId: string;
  encrypt(plaintext: Buffer | string, context: string): string;
  /** Opens an envelope sealed for `context`; throws DataCipherError for anything else. */
  decrypt(envelope: string, context: string): Buffer;
  /** The key id an envelope or digest names (throws if it is not one). */
  keyIdOf(sealed: string): string;
  /** A keyed digest `d1.<kid>.<mac>` of a secret that is only ever compared, never read back. */
  digest(value: string, context: string): string;
  /** Whether `value` is what `digest` was made of, in constant time; false for any other input. */
  matchesDigest(value: string, context: string, digest: string): boolean;
  /**
   * A 32-byte secret for another purpose (`info` names it), derived from the current key: every
   * process with the same DATA_ENCRYPTION_KEY derives the same one, and it changes with rotation.
   */
  derivedSecret(info: string): Buffer;
}

interface DerivedKey {
  id: string;
  encryption: Buffer;
  mac: Buffer;
}

// Separate subkeys, so the same key material is never used by two algorithms.
function derive(master: Buffer): DerivedKey {
  if (master.length !== KEY_BYTES)
    throw new DataCipherError(`a data encryption key must be ${KEY_BYTES} bytes`);
  const sub = (info: string) => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), info, KEY_BYTES));
  return {
    id: sub('passbook data key id').subarray(0, 6).toString('base64url'),
    encryption: sub('passbook data encryption v1'),
    mac: sub('passbook keyed digest v1'),
  };
}

function additionalData(kid: string, context: string): Buffer {
  return Buffer.from(`${VERSION}.${kid}\0${context}`, 'utf8');
}

function decoded(part: string | undefined): Buffer | undefined {
  if (part === undefined || !/^[A-Za-z0-9_-]+$/.test(part)) return undefined;
  return Buffer.from(part, 'base64url');
}

/** @param keys 32-byte keys, newest first: the first encrypts, each one decrypts what it sealed. */
export function dataCipher(keys: readonly Buffer[]): DataCipher {
  const derived = keys.map(derive);
  const [current] = derived;
  const [currentMaster] = keys;
  if (!current || !currentMaster) throw new DataCipherError('no data encryption key');
  const byId = new Map(derived.map((key) => [key.id, key]));

  function keyFor(kid: string | undefined): DerivedKey {
    const key = kid === undefined ? undefined : byId.get(kid);
    if (!key) {
      throw new DataCipherError(
        `sealed under key ${JSON.stringify(kid)}, which DATA_ENCRYPTION_KEY does not list: it must keep every key still in use`,
      );
    }
    return key;
  }

  function mac(key: DerivedKey, value: string, context: string): Buffer {
    return createHmac('sha256', key.mac).update(`${context}\0${value}`, 'utf8').digest();
  }

  return {
    currentKeyId: current.id,

    encrypt(plaintext, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current.encryption, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(additionalData(current.id, context));
      const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return [VERSION, current.id, iv.toString('base64url'), sealed.toString('base64url')].join('.');
    },

    decrypt(envelope, context) {
      const [version, kid, ivPart, sealedPart, ...rest] = envelope.split('.');
      const iv = decoded(ivPart);
      const sealed = decoded(sealedPart);
      if (
        version !== VERSION ||
        rest.length > 0 ||
        iv?.length !== IV_BYTES ||
        !sealed ||
        sealed.length < TAG_BYTES
      ) {
        throw new DataCipherError('not a Passbook v1 envelope');
      }
      const key = keyFor(kid);
      const decipher = createDecipheriv('aes-256-gcm', key.encryption, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(additionalData(key.id, context));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      try {
        return Buffer.concat([
          decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)),
          decipher.final(),
        ]);
      } catch {
        throw new DataCipherError(
          'an encrypted value failed authentication: it was altered, or belongs to another record',
        );
      }
    },

    keyIdOf(sealed) {
      const [version, kid] = sealed.split('.');
      if ((version !== VERSION && version !== DIGEST_VERSION) || !kid) {
        throw new DataCipherError('not a Passbook envelope or digest');
      }
      return kid;
    },

    digest(value, context) {
      return [DIGEST_VERSION, current.id, mac(current, value, context).toString('base64url')].join('.');
    },

    matchesDigest(value, context, digest) {
      const [version, kid, macPart, ...rest] = digest.split('.');
      const key = kid === undefined ? undefined : byId.get(kid);
      const expected = decoded(macPart);
      if (version !== DIGEST_VERSION || rest.length > 0 || !key || !expected) return false;
      const actual = mac(key, value, context);
      return actual.length === expected.length && timingSafeEqual(actual, expected);
    },

    derivedSecret(info) {
      return Buffer.from(hkdfSync('sha256', currentMaster, Buffer.alloc(0), info, KEY_BYTES));
    },
  };
}

/** A fresh key for DATA_ENCRYPTION_KEY. */
export function generateDataKey(): Buffer {
  return randomBytes(KEY_BYTES);
}
