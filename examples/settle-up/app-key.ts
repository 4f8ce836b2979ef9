import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { PrivateKey } from 'openid-client';

/**
 * Settle Up's own key: it signs the client assertions (private_key_jwt) with which Settle Up
 * authenticates at the bank. Made once, on the first run, and kept in a file only its owner can
 * read; the public JWK set written beside it is what the bank registers for the app.
 *
 * EXAMPLE ONLY: a real app keeps its private key in a key store or HSM and rotates it.
 */

const ALG = 'ES256';

export interface SettleUpKey {
  /** For openid-client's PrivateKeyJwt: the key and the kid the bank finds it by. */
  privateKey: PrivateKey;
  /** The public JWK set to register at the bank, and the file it is written to. */
  jwks: { keys: JWK[] };
  jwksFile: string;
}

export class SettleUpKeyError extends Error {
  override name = 'SettleUpKeyError';
}

/** `settle-up-key.json` → `settle-up-key.jwks.json`. */
export function jwksFileFor(keyFile: string): string {
  return keyFile.replace(/(\.json)?$/, '.jwks.json');
}

function publicMembers(jwk: JWK): JWK {
  const { kty, crv, x, y, kid } = jwk;
  return { kty, crv, x, y, kid, alg: ALG, use: 'sig' };
}

function temporaryFor(file: string): string {
  return `${file}.${randomBytes(6).toString('hex')}.tmp`;
}

/** Written to a temporary file and renamed, so a crash never leaves half a file. */
async function writeAtomically(file: string, contents: string, mode: number): Promise<void> {
  const temporary = temporaryFor(file);
  await writeFile(temporary, contents, { mode });
  await rename(temporary, file);
}

/**
 * A new key, put in place only if there is none yet (link fails where rename would replace):
 * two first runs at once end up with the one key, the one the bank registers.
 */
async function createKey(file: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  jwk.kid = await calculateJwkThumbprint(jwk);
  jwk.alg = ALG;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = temporaryFor(file);
  await writeFile(temporary, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600 });
  try {
    await link(temporary, file);
    return jwk;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const theirs = await readKey(file);
    if (!theirs) throw error;
    return theirs;
  } finally {
    await unlink(temporary);
  }
}

function parsedKey(file: string, text: string): JWK {
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch {
    throw new SettleUpKeyError(`${file} is not JSON; move it away to make a new key`);
  }
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.d || !jwk.kid) {
    throw new SettleUpKeyError(
      `${file} is not an ES256 private key with a kid; move it away to make a new one`,
    );
  }
  return jwk;
}

async function readKey(file: string): Promise<JWK | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const jwk = parsedKey(file, text);
  // Someone may have loosened it since: a private key is for its owner's eyes only.
  await chmod(file, 0o600);
  return jwk;
}

/** Settle Up's key, made on the first call and read from `file` on every later one. */
export async function ensureSettleUpKey(file: string): Promise<SettleUpKey> {
  const jwk = (await readKey(file)) ?? (await createKey(file));
  const jwks = { keys: [publicMembers(jwk)] };
  const jwksFile = jwksFileFor(file);
  await writeAtomically(jwksFile, `${JSON.stringify(jwks, null, 2)}\n`, 0o644);
  const key = await importJWK(jwk, ALG);
  if (key instanceof Uint8Array) throw new SettleUpKeyError(`${file} is not an ES256 private key`);
  return { privateKey: { key, kid: jwk.kid ?? '' }, jwks, jwksFile };
}
