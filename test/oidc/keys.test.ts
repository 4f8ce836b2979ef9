import { createKnex } from '../../src/db/knex.ts';
import { dataCipher, generateDataKey } from '../../src/crypto/data-cipher.ts';
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
