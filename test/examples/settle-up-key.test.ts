import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { compactVerify, importJWK, SignJWT } from 'jose';
import { ensureSettleUpKey, jwksFileFor } from '../../examples/settle-up/app-key.ts';
import { loadSettleUpConfig, SettleUpConfigError } from '../../examples/settle-up/config.ts';

/** Settle Up's own key and its settings, which need no bank to be checked. */

let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'settle-up-key-'));
});

afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

function mode(stats: { mode: number }): number {
  return stats.mode & 0o777;
}

describe('the app key', () => {
  test('is made once, readable by its owner only, in a folder only its owner may enter', async () => {
    const file = path.join(folder, 'fresh', 'settle-up-key.json');
    const first = await ensureSettleUpKey(file);
    expect(mode(await stat(file))).toBe(0o600);
    expect(mode(await stat(path.dirname(file)))).toBe(0o700);
    expect(first.jwksFile).toBe(path.join(folder, 'fresh', 'settle-up-key.jwks.json'));
    const onDisk = await readFile(file, 'utf8');

    const second = await ensureSettleUpKey(file);
    expect(await readFile(file, 'utf8')).toBe(onDisk);
    expect(second.privateKey.kid).toBe(first.privateKey.kid);
    expect(second.jwks).toEqual(first.jwks);
  });

  test('publishes only public members, and its public key checks what the private key signs', async () => {
    const file = path.join(folder, 'signing', 'key.json');
    const { privateKey, jwks, jwksFile } = await ensureSettleUpKey(file);
    expect(JSON.parse(await readFile(jwksFile, 'utf8'))).toEqual(jwks);
    expect(jwks.keys).toHaveLength(1);
    const [published] = jwks.keys;
    expect(Object.keys(published ?? {}).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    expect(published).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', kid: privateKey.kid });
    expect(JSON.stringify(jwks)).not.toContain('"d"');

    const jws = await new SignJWT({ sub: 'settle-up' })
      .setProtectedHeader({ alg: 'ES256', kid: privateKey.kid })
      .sign(privateKey.key);
    const { protectedHeader } = await compactVerify(jws, await importJWK(published ?? {}, 'ES256'));
    expect(protectedHeader.kid).toBe(privateKey.kid);
  });

  test('is refused, and kept, when the file holds something else', async () => {
    const file = path.join(folder, 'not-a-key.json');
    await writeFile(file, JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' }));
    await expect(ensureSettleUpKey(file)).rejects.toThrow(/is not an ES256 private key/);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ kty: 'oct', k: 'c2VjcmV0' });
  });

  test('is one key when two first runs make it at once', async () => {
    const file = path.join(folder, 'race', 'settle-up-key.json');
    const made = await Promise.all([
      ensureSettleUpKey(file),
      ensureSettleUpKey(file),
      ensureSettleUpKey(file),
    ]);
    expect(new Set(made.map((key) => key.privateKey.kid)).size).toBe(1);
    const { kid } = JSON.parse(await readFile(file, 'utf8')) as { kid: string };
    expect(made[0]?.privateKey.kid).toBe(kid);
    expect((await readdir(path.dirname(file))).sort()).toEqual([
      'settle-up-key.json',
      'settle-up-key.jwks.json',
    ]);
  });

  test('is refused with a reason when the file is not JSON', async () => {
    const file = path.join(folder, 'garbled.json');
    await writeFile(file, '{"kty": "EC", ');
    await expect(ensureSettleUpKey(file)).rejects.toThrow(/is not JSON/);
  });

  test('names its public JWK set after itself', () => {
    expect(jwksFileFor('/x/settle-up-key.json')).toBe('/x/settle-up-key.jwks.json');
    expect(jwksFileFor('/x/key')).toBe('/x/key.jwks.json');
  });
});

describe('the settings', () => {
  const required = { OIDC_CLIENT_ID: 'settle-up' };

  test('default to the demo ports and the key under .data', () => {
    expect(loadSettleUpConfig(required)).toEqual({
      port: 4100,
      baseUrl: 'http://localhost:4100',
      issuer: 'http://localhost:3000',
      bankApiUrl: 'http://localhost:3001',
      clientId: 'settle-up',
      keyFile: path.resolve('.data/settle-up-key.json'),
    });
  });

  test('take what the environment says', () => {
    const config = loadSettleUpConfig({
      ...required,
      PORT: '4200',
      BASE_URL: 'https://settle.example/',
      OIDC_ISSUER: 'https://bank.example',
      BANK_API_URL: 'https://api.bank.example',
      SETTLE_UP_KEY_FILE: '/keys/su.json',
    });
    expect(config).toMatchObject({
      port: 4200,
      baseUrl: 'https://settle.example',
      issuer: 'https://bank.example',
      bankApiUrl: 'https://api.bank.example',
      keyFile: '/keys/su.json',
    });
  });

  test.each([
    [{}, /OIDC_CLIENT_ID is required/],
    [{ ...required, PORT: 'eighty' }, /PORT must be a port number/],
    [{ ...required, PORT: '70000' }, /PORT must be a port number/],
    [{ ...required, OIDC_ISSUER: 'ftp://bank.example' }, /OIDC_ISSUER must be an http\(s\) URL/],
    [{ ...required, BANK_API_URL: 'not a url' }, /BANK_API_URL must be an http\(s\) URL/],
  ])('refuse %j', (env, message) => {
    expect(() => loadSettleUpConfig(env)).toThrow(SettleUpConfigError);
    expect(() => loadSettleUpConfig(env)).toThrow(message);
  });
});
