import { createKnex } from '../../src/db/knex.ts';
import { dataCipher, generateDataKey } from '../../src/crypto/data-cipher.ts';
import { migrate } from '../../src/db/migrate.ts';
import { exportJWK, generateKeyPair } from 'jose';
import { loadCookieKeys, loadSigningKeys } from '../../src/oidc/keys.ts';
import { createRunDatabase, dropRunDatabase } from '../support/database.ts';
import { startTestPassbook, testDatabaseUrl } from '../support/passbook.ts';

function adminUrl(): string {
  const url = new URL(testDatabaseUrl());
  url.pathname = '/postgres';
  return url.href;
}

describe('signing and cookie keys', () => {
  let databaseUrl: string;

  beforeAll(async () => {
    databaseUrl = await createRunDatabase(adminUrl());
  });

  afterAll(async () => {
    await dropRunDatabase(adminUrl(), databaseUrl);
  });

  test('processes starting together on an empty database create one key per algorithm between them', async () => {
    const connections = [createKnex(databaseUrl), createKnex(databaseUrl), createKnex(databaseUrl)];
    try {
      const cipher = dataCipher([generateDataKey()]);
      const loaded = await Promise.all(connections.map((knex) => loadSigningKeys(knex, cipher)));
      const kids = loaded.map((keys) => keys.map((key) => key.kid).sort());
      expect(kids[1]).toEqual(kids[0]);
      expect(kids[2]).toEqual(kids[0]);
      expect(loaded[0]?.map((key) => key.alg).sort()).toEqual(['ES256', 'RS256']);
      expect(new Set(kids[0]).size).toBe(2);
    } finally {
      await Promise.all(connections.map((knex) => knex.destroy()));
    }
  });

  test('an older database is upgraded: what signed keeps signing, a newer key waits, and all are sealed', async () => {
    const admin = createKnex(adminUrl(), 1);
    const url = new URL(databaseUrl);
    url.pathname = `/${url.pathname.slice(1)}_upgrade`;
    await admin.raw(`CREATE DATABASE ${url.pathname.slice(1)}`);
    const knex = createKnex(url.href);
    try {
      await migrate(knex, { before: '20261202140000' });
      const legacy = async (alg: 'RS256' | 'ES256', kid: string, createdAt: string) => {
        const { privateKey } = await generateKeyPair(alg, { extractable: true });
        const jwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
        await knex('signing_keys').insert({ kid, alg, private_jwk: jwk, created_at: createdAt });
      };
      await legacy('RS256', 'rs-old', '2026-11-26T12:00:00Z');
      await legacy('RS256', 'rs-new', '2026-11-30T12:00:00Z');
      await legacy('ES256', 'es-old', '2026-11-26T12:00:00Z');
      await migrate(knex);

      const cipher = dataCipher([generateDataKey()]);
      const keys = await loadSigningKeys(knex, cipher);
      // The active keys (one per algorithm, in either order) come before the waiting one.
      expect(
        keys
          .slice(0, 2)
          .map((key) => key.kid)
          .sort(),
      ).toEqual(['es-old', 'rs-old']);
      expect(keys.map((key) => [key.kid, key.key_ops])[2]).toEqual(['rs-new', undefined]);
      const rows = await knex('signing_keys')
        .orderBy('kid')
        .select<{ kid: string; state: string; private_jwk: unknown; private_jwk_envelope: string }[]>('*');
      expect(rows.map((row) => [row.kid, row.state, row.private_jwk])).toEqual([
        ['es-old', 'active', null],
        ['rs-new', 'next', null],
        ['rs-old', 'active', null],
      ]);
      for (const row of rows) expect(cipher.keyIdOf(row.private_jwk_envelope)).toBe(cipher.currentKeyId);
    } finally {
      await knex.destroy();
      await dropRunDatabase(adminUrl(), url.href);
      await admin.destroy();
    }
  });

  test('without COOKIE_KEYS a cookie key is generated once and then reused', async () => {
    const knex = createKnex(databaseUrl);
    try {
      const first = await loadCookieKeys(knex, undefined);
      const second = await loadCookieKeys(knex, undefined);
      expect(first).toHaveLength(1);
      expect(first[0]?.length).toBeGreaterThanOrEqual(43);
      expect(second).toEqual(first);
      expect(await loadCookieKeys(knex, ['configured-key-0123456789abcdefghijkl'])).toEqual([
        'configured-key-0123456789abcdefghijkl',
      ]);
    } finally {
      await knex.destroy();
    }
  });
});

test('every Passbook process on one database publishes the same JWKS', async () => {
  const [first, second] = await Promise.all([startTestPassbook(), startTestPassbook()]);
  try {
    const [jwksA, jwksB] = await Promise.all(
      [first, second].map(async (passbook) => (await fetch(`${passbook.issuer}/jwks`)).json()),
    );
    expect(jwksB).toEqual(jwksA);
    expect((jwksA as { keys: { alg: string }[] }).keys.map((key) => key.alg).sort()).toEqual([
      'ES256',
      'RS256',
    ]);
  } finally {
    await Promise.all([first.close(), second.close()]);
  }
});
