import { expect } from '@jest/globals';
import { spawn } from 'node:child_process';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import { DataCipherError, dataCipher, generateDataKey } from '../../src/crypto/data-cipher.ts';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import { createRunDatabase, dropRunDatabase } from '../support/database.ts';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  testDatabaseUrl,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { PROJECT_ROOT } from '../support/project.ts';
import { completeFlow } from '../support/third-party-app.ts';

/**
 * Rotating signing keys as an operator does, with the real CLI, against two Passbooks on one
 * database of their own (rotation would disturb every other test file's servers): what the JWKS
 * publishes, which key signs the ID tokens, and how soon the other node follows.
 */

const REFRESH_SECONDS = 1;
const OLD_DATA_KEY = generateDataKey();
const NEW_DATA_KEY = generateDataKey();
const dataKeyList = (...keys: Buffer[]) => keys.map((key) => key.toString('base64url')).join(',');

interface KeyInfo {
  kid: string;
  alg: string;
  state: string;
  deactivated_at: string | null;
}

let adminUrl: string;
let databaseUrl: string;
let first: TestPassbook;
let second: TestPassbook;
let app: RegisteredClient;
let customer: TestCustomer;

function node(dataKeys: string): Promise<TestPassbook> {
  return startTestPassbook({
    DATABASE_URL: databaseUrl,
    DATA_ENCRYPTION_KEY: dataKeys,
    KEY_REFRESH_INTERVAL: String(REFRESH_SECONDS),
  });
}

async function cli(args: string[], dataKeys = dataKeyList(OLD_DATA_KEY), env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['src/cli/main.ts', ...args], {
    cwd: PROJECT_ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      DATA_ENCRYPTION_KEY: dataKeys,
      KEY_REFRESH_INTERVAL: String(REFRESH_SECONDS),
      LOG_LEVEL: 'silent',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

async function cliJson<T>(args: string[], dataKeys?: string): Promise<T> {
  const result = await cli(args, dataKeys);
  if (result.code !== 0) throw new Error(`keys CLI exit ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

const listKeys = async () => (await cliJson<{ keys: KeyInfo[] }>(['keys:list'])).keys;

async function activeKid(alg: string): Promise<string> {
  const key = (await listKeys()).find((candidate) => candidate.alg === alg && candidate.state === 'active');
  if (!key) throw new Error(`no active ${alg} key`);
  return key.kid;
}

async function jwks(passbook: TestPassbook): Promise<JWK[]> {
  return ((await (await fetch(`${passbook.issuer}/jwks`)).json()) as JSONWebKeySet).keys;
}

async function idToken(passbook: TestPassbook): Promise<string> {
  const { tokens } = await completeFlow(passbook, app, customer, 'openid');
  if (!tokens.id_token) throw new Error('no ID token');
  return tokens.id_token;
}

const signerOf = async (passbook: TestPassbook) => decodeProtectedHeader(await idToken(passbook)).kid;

/** Polls until `check` passes, for at most `seconds`. */
async function within(seconds: number, check: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

beforeAll(async () => {
  const admin = new URL(testDatabaseUrl());
  admin.pathname = '/postgres';
  adminUrl = admin.href;
  databaseUrl = await createRunDatabase(adminUrl);
  first = await node(dataKeyList(OLD_DATA_KEY));
  second = await node(dataKeyList(OLD_DATA_KEY));
  app = await registerTestApp(first);
  customer = await createTestCustomer(first.knex);
});

afterAll(async () => {
  await Promise.all([first.close(), second.close()]);
  await dropRunDatabase(adminUrl, databaseUrl);
});

describe('rotating a signing key', () => {
  let oldKid: string;
  let newKid: string;
  let tokenByOldKey: string;

  test('ID tokens are signed by the active key, one per algorithm', async () => {
    const keys = await listKeys();
    expect(keys.map((key) => [key.alg, key.state]).sort()).toEqual([
      ['ES256', 'active'],
      ['RS256', 'active'],
    ]);
    oldKid = await activeKid('RS256');
    tokenByOldKey = await idToken(first);
    expect(decodeProtectedHeader(tokenByOldKey).kid).toBe(oldKid);
  });

  test('keys:rotate publishes the new key at once on both nodes, but it does not sign yet', async () => {
    const { key } = await cliJson<{ key: KeyInfo }>(['keys:rotate', '--alg', 'RS256', '--manual']);
    expect(key).toMatchObject({ alg: 'RS256', state: 'next' });
    newKid = key.kid;
    // Until every node has re-read the keys, some would sign with a key others do not publish.
    const tooSoon = await cli(['keys:activate', newKid], undefined, { KEY_REFRESH_INTERVAL: '60' });
    expect(tooSoon.code).toBe(1);
    expect(tooSoon.stderr).toMatch(/may sign only then/);
    await first.refreshSigningKeys();
    const published = await jwks(first);
    expect(published.map((jwk) => jwk.kid)).toContain(newKid);
    expect(published.find((jwk) => jwk.kid === newKid)?.key_ops).toBeUndefined();
    await within(REFRESH_SECONDS * 3, async () => {
      expect((await jwks(second)).map((jwk) => jwk.kid)).toContain(newKid);
    });
    expect(await signerOf(first)).toBe(oldKid);
    expect(await signerOf(second)).toBe(oldKid);
  });

  test('keys:activate makes it sign on every node within the refresh interval; the old key still verifies', async () => {
    const { key } = await cliJson<{ key: KeyInfo }>(['keys:activate', newKid]);
    expect(key.state).toBe('active');
    const started = Date.now();
    await within(REFRESH_SECONDS * 3, async () => {
      expect(await signerOf(second)).toBe(newKid);
    });
    expect(Date.now() - started).toBeLessThan(REFRESH_SECONDS * 3000);
    await first.refreshSigningKeys();
    expect(await signerOf(first)).toBe(newKid);

    const published = await jwks(first);
    expect(published.find((jwk) => jwk.kid === oldKid)?.key_ops).toEqual(['verify']);
    expect(published[0]?.kid).toBe(newKid);
    await expect(
      jwtVerify(tokenByOldKey, createLocalJWKSet({ keys: published }), { issuer: first.issuer }),
    ).resolves.toBeDefined();
    expect((await listKeys()).find((listed) => listed.kid === oldKid)?.state).toBe('retiring');
  });

  test('keys:retire refuses a key whose ID tokens may still be valid, unless forced; then it is unpublished', async () => {
    const refused = await cli(['keys:retire', oldKid]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/may be retired only after that/);
    expect((await jwks(first)).map((jwk) => jwk.kid)).toContain(oldKid);
    expect(await cli(['keys:retire', newKid])).toMatchObject({ code: 1 });

    const { key } = await cliJson<{ key: KeyInfo }>(['keys:retire', oldKid, '--force']);
    expect(key.state).toBe('retired');
    await first.refreshSigningKeys();
    expect((await jwks(first)).map((jwk) => jwk.kid)).not.toContain(oldKid);
    await within(REFRESH_SECONDS * 3, async () => {
      expect((await jwks(second)).map((jwk) => jwk.kid)).not.toContain(oldKid);
    });
    const row = await first.knex('signing_keys').where({ kid: oldKid }).first<Record<string, unknown>>();
    expect(row).toMatchObject({ state: 'retired', private_jwk: null, private_jwk_envelope: null });
  });

  test('a key rotated with --activate-after starts signing by itself once the delay has passed', async () => {
    const { key } = await cliJson<{ key: KeyInfo }>(['keys:rotate', '--activate-after', '2']);
    expect(key.alg).toBe('RS256');
    expect(await signerOf(second)).toBe(newKid);
    await within(2 + REFRESH_SECONDS * 3, async () => {
      expect(await signerOf(second)).toBe(key.kid);
    });
    const listed = await listKeys();
    expect(listed.find((candidate) => candidate.kid === key.kid)?.state).toBe('active');
    expect(listed.find((candidate) => candidate.kid === newKid)?.state).toBe('retiring');
  });
});

describe('private signing keys at rest', () => {
  test('the table holds only envelopes, which open only with the right data key and kid', async () => {
    const rows = await first
      .knex('signing_keys')
      .whereNot({ state: 'retired' })
      .select<{ kid: string; private_jwk: unknown; private_jwk_envelope: string }[]>('*');
    expect(rows.length).toBeGreaterThanOrEqual(2);
    const published = await jwks(first);
    const right = dataCipher([OLD_DATA_KEY]);
    for (const row of rows) {
      expect(row.private_jwk).toBeNull();
      expect(row.private_jwk_envelope).toMatch(/^v1\./);
      const jwk = JSON.parse(
        right.decrypt(row.private_jwk_envelope, `signing-key:${row.kid}`).toString(),
      ) as JWK;
      expect(jwk.kid).toBe(row.kid);
      expect(typeof jwk.d).toBe('string');
      expect(row.private_jwk_envelope).not.toContain(String(jwk.d));
      expect(published.find((key) => key.kid === row.kid)?.d).toBeUndefined();
      expect(() =>
        dataCipher([NEW_DATA_KEY]).decrypt(row.private_jwk_envelope, `signing-key:${row.kid}`),
      ).toThrow(DataCipherError);
      expect(() => right.decrypt(row.private_jwk_envelope, 'signing-key:another')).toThrow(DataCipherError);
    }
  });

  test('keys written in plaintext before encryption are sealed at the next read', async () => {
    const [row] = await first
      .knex('signing_keys')
      .where({ state: 'active', alg: 'ES256' })
      .select<{ kid: string; private_jwk_envelope: string }[]>('kid', 'private_jwk_envelope');
    if (!row) throw new Error('no ES256 key');
    const jwk = dataCipher([OLD_DATA_KEY])
      .decrypt(row.private_jwk_envelope, `signing-key:${row.kid}`)
      .toString();
    await first
      .knex('signing_keys')
      .where({ kid: row.kid })
      .update({ private_jwk: first.knex.raw('?::jsonb', [jwk]), private_jwk_envelope: null });
    await first.refreshSigningKeys();
    const sealed = await first.knex('signing_keys').where({ kid: row.kid }).first<Record<string, unknown>>();
    expect(sealed?.private_jwk).toBeNull();
    expect(String(sealed?.private_jwk_envelope)).toMatch(/^v1\./);
  });

  test('keys:rewrap moves every envelope to the newest data key while every node keeps signing', async () => {
    const rolledOut = dataKeyList(NEW_DATA_KEY, OLD_DATA_KEY);
    const third = await node(rolledOut);
    try {
      const result = await cliJson<{ signing_keys: number; data_key_id: string }>(['keys:rewrap'], rolledOut);
      expect(result.signing_keys).toBeGreaterThanOrEqual(2);
      expect(result.data_key_id).toBe(dataCipher([NEW_DATA_KEY]).currentKeyId);
      const envelopes = await first
        .knex('signing_keys')
        .whereNotNull('private_jwk_envelope')
        .pluck<string[]>('private_jwk_envelope');
      for (const envelope of envelopes)
        expect(dataCipher([NEW_DATA_KEY]).keyIdOf(envelope)).toBe(result.data_key_id);
      expect((await cliJson<{ signing_keys: number }>(['keys:rewrap'], rolledOut)).signing_keys).toBe(0);

      const signer = await signerOf(third);
      await third.refreshSigningKeys();
      expect(await signerOf(third)).toBe(signer);
      // A node not yet given the new key cannot read the table any more, but keeps what it holds.
      await expect(first.refreshSigningKeys()).rejects.toThrow(DataCipherError);
      expect(await signerOf(first)).toBe(signer);
      // Once rewrapped, the old data key can go.
      const fourth = await node(dataKeyList(NEW_DATA_KEY));
      try {
        expect(await signerOf(fourth)).toBe(signer);
      } finally {
        await fourth.close();
      }
    } finally {
      await third.close();
    }
  });
});
