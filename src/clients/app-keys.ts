import { importJWK, type JWK } from 'jose';

/**
 * An app's public keys, as the bank registers them for private_key_jwt: a JWK set read from a
 * file the app's developers hand over. Only public keys of the algorithms FAPI 2.0 allows are
 * taken (RSA of 2048 bits or more for PS256, P-256 for ES256, Ed25519 for EdDSA), and the
 * algorithm the app signs its assertions with follows from them: RS256 is never one.
 */

export const APP_SIGNING_ALGORITHMS = ['PS256', 'ES256', 'EdDSA'] as const;
export type AppSigningAlgorithm = (typeof APP_SIGNING_ALGORITHMS)[number];

export interface AppKeys {
  keys: JWK[];
  /** The one algorithm every key of the set is for. */
  alg: AppSigningAlgorithm;
}

export class InvalidAppKeysError extends Error {
  override name = 'InvalidAppKeysError';
}

/** Members that only a private or symmetric key has: a set that carries any is refused. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const MAX_KEYS = 10;
const MIN_RSA_BITS = 2048;

export function isAppSigningAlgorithm(value: unknown): value is AppSigningAlgorithm {
  return APP_SIGNING_ALGORITHMS.some((alg) => alg === value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function rsaBits(modulus: unknown): number {
  if (typeof modulus !== 'string') return 0;
  const bytes = Buffer.from(modulus, 'base64url');
  const leadingZeroBytes = bytes.findIndex((byte) => byte !== 0);
  return (bytes.length - Math.max(0, leadingZeroBytes)) * 8;
}

function algorithmOf(key: Record<string, unknown>, index: number): AppSigningAlgorithm {
  const where = `key ${index + 1}`;
  if (key.kty === 'RSA') {
    if (rsaBits(key.n) < MIN_RSA_BITS)
      throw new InvalidAppKeysError(`${where}: RSA keys need ${MIN_RSA_BITS} bits or more`);
    return 'PS256';
  }
  if (key.kty === 'EC' && key.crv === 'P-256') return 'ES256';
  if (key.kty === 'OKP' && key.crv === 'Ed25519') return 'EdDSA';
  throw new InvalidAppKeysError(`${where}: only RSA, EC P-256 and Ed25519 keys are accepted`);
}

async function checkedKey(key: unknown, index: number): Promise<{ jwk: JWK; alg: AppSigningAlgorithm }> {
  const where = `key ${index + 1}`;
  if (!isObject(key)) throw new InvalidAppKeysError(`${where} is not a JSON object`);
  const privateMember = PRIVATE_MEMBERS.find((member) => member in key);
  if (privateMember) {
    throw new InvalidAppKeysError(
      `${where} has the private member "${privateMember}": register only the public key`,
    );
  }
  const alg = algorithmOf(key, index);
  if (key.alg !== undefined && key.alg !== alg) {
    throw new InvalidAppKeysError(
      `${where} says alg ${JSON.stringify(key.alg)}; this key type signs with ${alg}`,
    );
  }
  if (key.use !== undefined && key.use !== 'sig')
    throw new InvalidAppKeysError(`${where} is not for signatures`);
  try {
    await importJWK({ ...key, alg }, alg);
  } catch (error) {
    throw new InvalidAppKeysError(`${where} is not a valid key: ${(error as Error).message}`);
  }
  return { jwk: { ...(key as JWK), alg }, alg };
}

/** The public JWK set in `json` (a file's text), checked; throws InvalidAppKeysError saying why not. */
export async function parseAppKeys(json: string): Promise<AppKeys> {
  let set: unknown;
  try {
    set = JSON.parse(json);
  } catch {
    throw new InvalidAppKeysError('the key file is not JSON');
  }
  if (!isObject(set) || !Array.isArray(set.keys) || set.keys.length === 0) {
    throw new InvalidAppKeysError('the key file must be a JWK set: {"keys": [ ... ]} with at least one key');
  }
  if (set.keys.length > MAX_KEYS) throw new InvalidAppKeysError(`at most ${MAX_KEYS} keys`);
  const checked = await Promise.all(set.keys.map((key, index) => checkedKey(key, index)));
  const algs = new Set(checked.map((key) => key.alg));
  const [alg] = algs;
  if (!alg || algs.size > 1) {
    throw new InvalidAppKeysError(
      'every key of the set must be of one type, so that the app signs with one algorithm',
    );
  }
  const kids = checked.map(({ jwk }) => jwk.kid);
  if (checked.length > 1 && (kids.some((kid) => !kid) || new Set(kids).size !== kids.length)) {
    throw new InvalidAppKeysError('a set of several keys needs a distinct kid on each');
  }
  return { keys: checked.map(({ jwk }) => jwk), alg };
}
