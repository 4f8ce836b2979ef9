import { Secret, TOTP } from 'otpauth';
import { dataCipher, DataCipherError, generateDataKey } from '../../src/crypto/data-cipher.ts';
import {
  rewrapAuthenticatorSecrets,
  enrolAuthenticatorApp,
  secondFactors,
  twoStepSettings,
  type SecondFactors,
  type TwoStepSettings,
} from '../../src/customers/second-factors.ts';
import { newTotpSecret } from '../../src/customers/totp.ts';
import { createTestCustomer, testDatabaseUrl, useTestPassbook } from '../support/passbook.ts';
import { createRunDatabase, dropRunDatabase } from '../support/database.ts';
import { createKnex } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';

/** The second factors as sign-in uses them: on a fixed clock, against the real PostgreSQL. */

const passbook = useTestPassbook();
let factors: SecondFactors;
let settings: TwoStepSettings;

beforeAll(() => {
  factors = secondFactors(passbook.knex, passbook.cipher);
  settings = twoStepSettings(passbook.knex, passbook.cipher);
});

/** 2026-12-02 10:00:15 UTC: the middle of a 30-second step. */
const NOW = new Date(Date.UTC(2026, 11, 2, 10, 0, 15));
const STEP_MS = 30_000;

function codeAt(secret: Buffer, offsetSteps: number, now = NOW): string {
  return TOTP.generate({
    secret: Secret.fromHex(secret.toString('hex')),
    timestamp: now.getTime() + offsetSteps * STEP_MS,
  });
}

async function enrolled(): Promise<{ id: string; secret: Buffer; recoveryCodes: string[] }> {
  const customer = await createTestCustomer(passbook.knex);
  const secret = newTotpSecret();
  const recoveryCodes = await enrolAuthenticatorApp(passbook.knex, passbook.cipher, customer.id, secret);
  return { id: customer.id, secret, recoveryCodes };
}

async function storedEnvelope(customerId: string): Promise<{ secret_envelope: string }> {
  const row = await passbook
    .knex('authenticator_apps')
    .where({ customer_id: customerId })
    .first<{ secret_envelope: string } | undefined>('secret_envelope');
  if (!row) throw new Error('no authenticator app stored');
  return row;
}

describe('turning the authenticator app on', () => {
  test('it is off until one code from the app confirms it; a wrong code leaves it off', async () => {
    const customer = await createTestCustomer(passbook.knex);
    expect(await factors.hasAuthenticatorApp(customer.id)).toBe(false);
    const secret = await settings.startEnrolment(customer.id);
    if (!secret) throw new Error('no pending secret');
    expect(await settings.startEnrolment(customer.id)).toEqual(secret);
    expect(await factors.hasAuthenticatorApp(customer.id)).toBe(false);
    expect((await settings.status(customer.id)).state).toBe('pending');
    expect(await factors.verifyCode(customer.id, codeAt(secret, 0), NOW)).toEqual({ ok: false });

    const wrong = String((Number(codeAt(secret, 0)) + 1) % 1_000_000).padStart(6, '0');
    expect(await settings.confirmEnrolment(customer.id, wrong, NOW)).toBeUndefined();
    expect(await factors.hasAuthenticatorApp(customer.id)).toBe(false);

    const codes = await settings.confirmEnrolment(customer.id, codeAt(secret, 0), NOW);
    expect(codes).toHaveLength(10);
    expect(await factors.hasAuthenticatorApp(customer.id)).toBe(true);
    expect(await settings.status(customer.id)).toMatchObject({ state: 'on', recoveryCodesLeft: 10 });
    // The confirming code has been used: it cannot sign in too.
    expect(await factors.verifyCode(customer.id, codeAt(secret, 0), NOW)).toEqual({ ok: false });
    expect(await settings.startEnrolment(customer.id)).toBeUndefined();
  });
});

describe('authenticator codes', () => {
  test('a code is accepted once; the same code again is refused', async () => {
    const { id, secret } = await enrolled();
    expect(await factors.verifyCode(id, codeAt(secret, 0), NOW)).toEqual({ ok: true, method: 'otp' });
    expect(await factors.verifyCode(id, codeAt(secret, 0), NOW)).toEqual({ ok: false });
    // Typed with a space in the middle, as some apps show it: the same code, still used.
    const spaced = `${codeAt(secret, 0).slice(0, 3)} ${codeAt(secret, 0).slice(3)}`;
    expect(await factors.verifyCode(id, spaced, NOW)).toEqual({ ok: false });
  });

  test('one step of clock drift either way is accepted', async () => {
    const behind = await enrolled();
    expect(await factors.verifyCode(behind.id, codeAt(behind.secret, -1), NOW)).toMatchObject({ ok: true });
    const ahead = await enrolled();
    expect(await factors.verifyCode(ahead.id, codeAt(ahead.secret, 1), NOW)).toMatchObject({ ok: true });
  });

  test('two steps of drift either way are refused', async () => {
    const { id, secret } = await enrolled();
    expect(await factors.verifyCode(id, codeAt(secret, -2), NOW)).toEqual({ ok: false });
    expect(await factors.verifyCode(id, codeAt(secret, 2), NOW)).toEqual({ ok: false });
    expect(await factors.verifyCode(id, codeAt(secret, 0), NOW)).toMatchObject({ ok: true });
  });

  test('after a later step has been used, an earlier step’s code is refused', async () => {
    const { id, secret } = await enrolled();
    expect(await factors.verifyCode(id, codeAt(secret, 1), NOW)).toMatchObject({ ok: true });
    expect(await factors.verifyCode(id, codeAt(secret, 0), NOW)).toEqual({ ok: false });
    expect(await factors.verifyCode(id, codeAt(secret, -1), NOW)).toEqual({ ok: false });
    // The next step's own code works when its time comes.
    const later = new Date(NOW.getTime() + 2 * STEP_MS);
    expect(await factors.verifyCode(id, codeAt(secret, 0, later), later)).toMatchObject({ ok: true });
  });

  test('two simultaneous submissions of one code: exactly one passes', async () => {
    for (let round = 0; round < 5; round += 1) {
      const { id, secret } = await enrolled();
      const code = codeAt(secret, 0);
      const results = await Promise.all([1, 2, 3].map(() => factors.verifyCode(id, code, NOW)));
      expect(results.filter((result) => result.ok)).toHaveLength(1);
    }
  });

  test('another customer’s code, a code of the wrong shape or an unknown customer is refused', async () => {
    const one = await enrolled();
    const other = await enrolled();
    expect(await factors.verifyCode(other.id, codeAt(one.secret, 0), NOW)).toEqual({ ok: false });
    for (const code of ['', '12345', '1234567', 'abcdef', '１２３４５６', `${codeAt(one.secret, 0)}\u0000`]) {
      expect(await factors.verifyCode(one.id, code, NOW)).toEqual({ ok: false });
    }
    expect(await factors.verifyCode('not-a-customer', codeAt(one.secret, 0), NOW)).toEqual({ ok: false });
    expect(await factors.hasAuthenticatorApp('not-a-customer')).toBe(false);
  });
});

describe('recovery codes', () => {
  test('ten codes like k7pq-3mzt-x9; each works once, and the count of those left goes down', async () => {
    const { id, recoveryCodes } = await enrolled();
    expect(recoveryCodes).toHaveLength(10);
    expect(new Set(recoveryCodes).size).toBe(10);
    for (const code of recoveryCodes) expect(code).toMatch(/^[0-9a-hjkmnp-tv-z]{10}$/);
    const [first = '', second = ''] = recoveryCodes;
    const typed = `${first.slice(0, 4)}-${first.slice(4, 8)}-${first.slice(8)}`;
    expect(await factors.verifyCode(id, typed, NOW)).toEqual({ ok: true, method: 'recovery', remaining: 9 });
    expect(await factors.verifyCode(id, typed, NOW)).toEqual({ ok: false });
    expect(await factors.verifyCode(id, ` ${second.toUpperCase()} `, NOW)).toEqual({
      ok: true,
      method: 'recovery',
      remaining: 8,
    });
  });

  test('two simultaneous uses of one recovery code: exactly one passes', async () => {
    const { id, recoveryCodes } = await enrolled();
    const code = recoveryCodes[0] ?? '';
    const results = await Promise.all([1, 2, 3].map(() => factors.verifyCode(id, code, NOW)));
    expect(results.filter((result) => result.ok)).toEqual([{ ok: true, method: 'recovery', remaining: 9 }]);
  });

  test('another customer’s recovery code does not work', async () => {
    const one = await enrolled();
    const other = await enrolled();
    expect(await factors.verifyCode(other.id, one.recoveryCodes[0] ?? '', NOW)).toEqual({ ok: false });
  });

  test('new codes replace the old set, and need a current code', async () => {
    const { id, secret, recoveryCodes } = await enrolled();
    expect(await settings.replaceRecoveryCodes(id, '000000', NOW)).toBeUndefined();
    const fresh = await settings.replaceRecoveryCodes(id, codeAt(secret, 0), NOW);
    expect(fresh).toHaveLength(10);
    expect(await factors.verifyCode(id, recoveryCodes[1] ?? '', NOW)).toEqual({ ok: false });
    expect(await factors.verifyCode(id, fresh?.[0] ?? '', NOW)).toMatchObject({ ok: true, remaining: 9 });
  });
});

describe('turning it off', () => {
  test('needs a current code or a recovery code, then removes the secret and the codes', async () => {
    const { id, secret, recoveryCodes } = await enrolled();
    expect(await settings.turnOff(id, '', NOW)).toBe(false);
    expect(await settings.turnOff(id, codeAt(secret, 3), NOW)).toBe(false);
    expect(await factors.hasAuthenticatorApp(id)).toBe(true);
    expect(await settings.turnOff(id, recoveryCodes[0] ?? '', NOW)).toBe(true);
    expect(await factors.hasAuthenticatorApp(id)).toBe(false);
    expect(await passbook.knex('authenticator_apps').where({ customer_id: id })).toEqual([]);
    expect(await passbook.knex('recovery_codes').where({ customer_id: id })).toEqual([]);
    expect(await factors.verifyCode(id, recoveryCodes[1] ?? '', NOW)).toEqual({ ok: false });
  });
});

describe('at rest', () => {
  test('the TOTP secret is stored encrypted, opening only with the right key and context', async () => {
    const { id, secret } = await enrolled();
    const other = await createTestCustomer(passbook.knex);
    const row = await storedEnvelope(id);
    const base32 = Secret.fromHex(secret.toString('hex')).base32;
    for (const plain of [
      base32,
      secret.toString('hex'),
      secret.toString('base64'),
      secret.toString('base64url'),
    ]) {
      expect(row.secret_envelope).not.toContain(plain);
    }
    expect(row.secret_envelope).toMatch(/^v1\./);
    expect(passbook.cipher.decrypt(row.secret_envelope, `totp:${id}`)).toEqual(secret);
    expect(() => passbook.cipher.decrypt(row.secret_envelope, `totp:${other.id}`)).toThrow(DataCipherError);
    expect(() => dataCipher([generateDataKey()]).decrypt(row.secret_envelope, `totp:${id}`)).toThrow(
      DataCipherError,
    );
  });

  test('a secret moved to another customer’s row refuses loudly rather than verify', async () => {
    const one = await enrolled();
    const other = await enrolled();
    const row = await storedEnvelope(one.id);
    await passbook
      .knex('authenticator_apps')
      .where({ customer_id: other.id })
      .update({ secret_envelope: row.secret_envelope });
    await expect(factors.verifyCode(other.id, codeAt(one.secret, 0), NOW)).rejects.toThrow(DataCipherError);
  });

  test('recovery codes are stored only as keyed digests', async () => {
    const { id, recoveryCodes } = await enrolled();
    const rows = await passbook
      .knex('recovery_codes')
      .where({ customer_id: id })
      .select<{ code_digest: string }[]>('code_digest');
    expect(rows).toHaveLength(10);
    for (const row of rows) {
      expect(row.code_digest).toMatch(/^d1\.[\w-]{8}\.[\w-]{43}$/);
      for (const code of recoveryCodes) expect(row.code_digest).not.toContain(code);
    }
  });
});

describe('rewrapping under a new data key', () => {
  test('every secret moves to the newest key, still opens for its customer, and the old key can go', async () => {
    // A database of its own: rewrapping touches every row, and other files' rows are sealed under their keys.
    const admin = new URL(testDatabaseUrl());
    admin.pathname = '/postgres';
    const url = await createRunDatabase(admin.href);
    const knex = createKnex(url);
    try {
      await migrate(knex);
      const oldKey = generateDataKey();
      const newKey = generateDataKey();
      const before = dataCipher([oldKey]);
      const customers = await Promise.all([createTestCustomer(knex), createTestCustomer(knex)]);
      const secrets = customers.map(() => newTotpSecret());
      for (const [index, customer] of customers.entries()) {
        await enrolAuthenticatorApp(knex, before, customer.id, secrets[index] ?? Buffer.alloc(0));
      }
      const both = dataCipher([newKey, oldKey]);
      expect(await rewrapAuthenticatorSecrets(knex, both)).toBe(2);
      expect(await rewrapAuthenticatorSecrets(knex, both)).toBe(0);

      const after = dataCipher([newKey]);
      for (const [index, customer] of customers.entries()) {
        const row = await knex('authenticator_apps')
          .where({ customer_id: customer.id })
          .first<{ secret_envelope: string }>('secret_envelope');
        expect(after.keyIdOf(row.secret_envelope)).toBe(after.currentKeyId);
        expect(after.decrypt(row.secret_envelope, `totp:${customer.id}`)).toEqual(secrets[index]);
        const code = TOTP.generate({ secret: Secret.fromHex(String(secrets[index]?.toString('hex'))) });
        expect(await secondFactors(knex, after).verifyCode(customer.id, code)).toEqual({
          ok: true,
          method: 'otp',
        });
      }
    } finally {
      await knex.destroy();
      await dropRunDatabase(admin.href, url);
    }
  });
});
