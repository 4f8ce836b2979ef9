import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { parseAppKeys } from '../../src/clients/app-keys.ts';

/** The public keys an app registers for private_key_jwt: only what FAPI 2.0 allows, public only. */

async function publicJwk(alg: 'ES256' | 'PS256' | 'RS256' | 'EdDSA' | 'ES384'): Promise<JWK> {
  const { publicKey } = await generateKeyPair(alg);
  return exportJWK(publicKey);
}

/** jose refuses to make an RSA key this weak; node:crypto still can. */
function weakRsaJwk(): JWK {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  return publicKey.export({ format: 'jwk' });
}

const set = (...keys: JWK[]) => JSON.stringify({ keys });

describe('parseAppKeys', () => {
  test.each([
    ['ES256', 'ES256'],
    ['PS256', 'PS256'],
    ['EdDSA', 'EdDSA'],
  ] as const)('a %s public key is taken, and its algorithm with it', async (alg, expected) => {
    const keys = await parseAppKeys(set(await publicJwk(alg)));
    expect(keys.alg).toBe(expected);
    expect(keys.keys).toEqual([expect.objectContaining({ alg: expected })]);
  });

  test('an RSA key signs with PS256, never RS256, and says so when it claims RS256', async () => {
    const rsa = await publicJwk('RS256');
    expect((await parseAppKeys(set(rsa))).alg).toBe('PS256');
    await expect(parseAppKeys(set({ ...rsa, alg: 'RS256' }))).rejects.toThrow('signs with PS256');
  });

  test.each([
    ['not JSON', 'keys'],
    ['no keys member', '{}'],
    ['an empty set', '{"keys":[]}'],
    ['a key that is not an object', '{"keys":[1]}'],
  ])('%s is refused', async (_case, json) => {
    await expect(parseAppKeys(json)).rejects.toThrow();
  });

  test('a private key is refused, naming the private member', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    await expect(parseAppKeys(set(await exportJWK(privateKey)))).rejects.toThrow('private member "d"');
  });

  test('a P-384 key, an RSA key under 2048 bits and a key for encryption are refused', async () => {
    await expect(parseAppKeys(set(await publicJwk('ES384')))).rejects.toThrow(
      'only RSA, EC P-256 and Ed25519',
    );
    await expect(parseAppKeys(set(weakRsaJwk()))).rejects.toThrow('2048');
    await expect(parseAppKeys(set({ ...(await publicJwk('ES256')), use: 'enc' }))).rejects.toThrow(
      'signatures',
    );
  });

  test('a key whose numbers are not a point on the curve is refused', async () => {
    const key = await publicJwk('ES256');
    await expect(parseAppKeys(set({ ...key, x: key.y }))).rejects.toThrow('not a valid key');
  });

  test('several keys need one type and distinct kids', async () => {
    const [one, two] = [await publicJwk('ES256'), await publicJwk('ES256')];
    await expect(parseAppKeys(set(one, two))).rejects.toThrow('distinct kid');
    const keys = await parseAppKeys(set({ ...one, kid: 'a' }, { ...two, kid: 'b' }));
    expect(keys.keys.map((key) => key.kid)).toEqual(['a', 'b']);
    await expect(
      parseAppKeys(set({ ...one, kid: 'a' }, { ...(await publicJwk('EdDSA')), kid: 'b' })),
    ).rejects.toThrow('one type');
  });
});
