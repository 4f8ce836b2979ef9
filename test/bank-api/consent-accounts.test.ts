import { randomInt, randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { callBankApi, startTestBankApi, type TestBankApi } from '../support/bank-api.ts';
import {
  createTestCustomer,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { openAccounts } from '../../src/bank-api/ledger.ts';
import { ibanFor } from '../../src/payments/iban.ts';
import { loadSigningKeys } from '../../src/oidc/keys.ts';
import { AccountsUnavailable, accountLookup, accountLookupToken } from '../../src/payments/account-lookup.ts';

/**
 * GET /consent/accounts answers Passbook only, about the customer its signed lookup token names,
 * and Passbook's lookup client reads that answer; every other token is refused with 401.
 */

let passbook: TestPassbook;
let bankApi: TestBankApi;
let dana: TestCustomer;
let sam: TestCustomer;
let keys: JWK[];

/** A fresh IBAN for each account: they are unique across the whole ledger. */
function newIban(): string {
  return ibanFor('NL', `PBTS${String(randomInt(10 ** 9)).padStart(10, '0')}`);
}

beforeAll(async () => {
  passbook = await startTestPassbook();
  bankApi = await startTestBankApi(passbook);
  [dana, sam] = await Promise.all([createTestCustomer(passbook.knex), createTestCustomer(passbook.knex)]);
  await openAccounts(bankApi.knex, dana.id, [
    {
      name: 'Everyday',
      kind: 'current',
      iban: newIban(),
      currency: 'EUR',
      openingBalanceMinor: 12_050,
      transactions: [],
    },
    {
      name: 'Rainy day',
      kind: 'savings',
      iban: newIban(),
      currency: 'EUR',
      openingBalanceMinor: 500,
      transactions: [],
    },
  ]);
  await openAccounts(bankApi.knex, sam.id, [
    {
      name: 'Sam current',
      kind: 'current',
      iban: newIban(),
      currency: 'EUR',
      openingBalanceMinor: 99,
      transactions: [],
    },
  ]);
  keys = await loadSigningKeys(passbook.knex, passbook.cipher);
});

afterAll(async () => {
  await bankApi.close();
  await passbook.close();
});

function lookupOptions() {
  return { issuer: passbook.issuer, bankApiUrl: passbook.bankApiUrl, signingKeys: () => keys };
}

function passbookEs256Key(): JWK {
  const key = keys.find((candidate) => candidate.alg === 'ES256');
  if (!key) throw new Error('Passbook has no ES256 key');
  return key;
}

/** A lookup token as Passbook would sign it, with the given changes. */
async function lookupToken(
  changes: {
    key?: JWK;
    typ?: string;
    aud?: string;
    iat?: number;
    exp?: number;
    sub?: string;
  } = {},
): Promise<string> {
  const jwk = changes.key ?? passbookEs256Key();
  const now = Math.floor(Date.now() / 1000);
  const iat = changes.iat ?? now;
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', typ: changes.typ ?? 'account-lookup+jwt', kid: String(jwk.kid) })
    .setIssuer(passbook.issuer)
    .setAudience(changes.aud ?? passbook.bankApiUrl)
    .setSubject(changes.sub ?? dana.id)
    .setIssuedAt(iat)
    .setExpirationTime(changes.exp ?? iat + 60)
    .setJti(randomUUID())
    .sign(await importJWK(jwk, 'ES256'));
}

interface LookupAnswer {
  accounts: { iban: string; name: string; balance: { currency: string; amount: string } }[];
}

test("Passbook's lookup token is answered with that customer's accounts and balances, and no one else's", async () => {
  const answer = await callBankApi<LookupAnswer>(bankApi.url, '/consent/accounts', {
    token: await accountLookupToken(lookupOptions(), dana.id),
  });
  expect(answer.status).toBe(200);
  expect(answer.body.accounts.map(({ name, balance }) => ({ name, balance }))).toEqual([
    { name: 'Everyday', balance: { currency: 'EUR', amount: '120.50' } },
    { name: 'Rainy day', balance: { currency: 'EUR', amount: '5.00' } },
  ]);
  expect(answer.body.accounts.every((account) => /^NL\d{2}PBTS\d{10}$/.test(account.iban))).toBe(true);

  const forSam = await accountLookup(lookupOptions())(sam.id);
  expect(forSam.map((account) => account.name)).toEqual(['Sam current']);
});

test('the lookup token Passbook signs says who asks, for whom, for what, and lives a minute at most', async () => {
  const token = await accountLookupToken(lookupOptions(), dana.id);
  const [header, payload] = token
    .split('.')
    .slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>);
  expect(header).toEqual({ alg: 'ES256', typ: 'account-lookup+jwt', kid: passbookEs256Key().kid });
  expect(payload).toMatchObject({ iss: passbook.issuer, aud: passbook.bankApiUrl, sub: dana.id });
  expect(Number(payload?.exp) - Number(payload?.iat)).toBeLessThanOrEqual(60);
  expect(typeof payload?.jti).toBe('string');
});

describe('anything else is refused with 401 invalid_token', () => {
  async function expectRefused(token: string | undefined, headers: Record<string, string> = {}) {
    const answer = await callBankApi(bankApi.url, '/consent/accounts', {
      ...(token ? { token } : {}),
      headers,
    });
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ error: 'invalid_token' });
    expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
    expect(JSON.stringify(answer.body)).not.toContain('Everyday');
  }

  test('no token at all', () => expectRefused(undefined));

  test('a token for another audience', async () =>
    expectRefused(await lookupToken({ aud: 'https://other.example' })));

  test('an expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await lookupToken({ iat: now - 120, exp: now - 60 }));
  });

  test('a token meant to live longer than a minute', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await lookupToken({ iat: now, exp: now + 3600 }));
  });

  test('an unsigned token (alg none)', async () => {
    const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${encode({ alg: 'none', typ: 'account-lookup+jwt' })}.${encode({
      iss: passbook.issuer,
      aud: passbook.bankApiUrl,
      sub: dana.id,
      iat: now,
      exp: now + 60,
      jti: randomUUID(),
    })}.`;
    await expectRefused(unsigned);
  });

  test('a token signed by a key that is not Passbook’s, under Passbook’s kid', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const other = { ...(await exportJWK(privateKey)), kid: passbookEs256Key().kid, alg: 'ES256' };
    await expectRefused(await lookupToken({ key: other }));
  });

  test('a token signed by a key that is not Passbook’s, under a kid of its own', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    await expectRefused(
      await lookupToken({ key: { ...(await exportJWK(privateKey)), kid: 'not-passbook' } }),
    );
  });

  test('a JWT of another type (an ID token is not a lookup token)', async () =>
    expectRefused(await lookupToken({ typ: 'JWT' })));

  test("an app's access token", async () => expectRefused('an-opaque-access-token-value'));
});

test("Passbook's lookup client reports a bank API it cannot reach, never an empty list", async () => {
  const lookUp = accountLookup({ ...lookupOptions(), bankApiUrl: 'http://127.0.0.1:9' });
  await expect(lookUp(dana.id)).rejects.toBeInstanceOf(AccountsUnavailable);
});

test("Passbook's lookup client reports a refusal by the bank API as unavailable too", async () => {
  const lookUp = accountLookup({ ...lookupOptions(), issuer: 'https://not-passbook.example' });
  await expect(lookUp(dana.id)).rejects.toThrow(/answered 401/);
});
