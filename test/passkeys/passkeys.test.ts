import { randomBytes } from 'node:crypto';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import {
  addPasskey,
  consumeChallenge,
  findPasskeyByCredentialId,
  recordPasskeyUse,
  storeChallenge,
} from '../../src/passkeys/passkeys.ts';
import { amrFor } from '../../src/passkeys/ceremonies.ts';
import { createTestCustomer, testDatabaseUrl, type TestCustomer } from '../support/passbook.ts';

/** What the passkey store promises: challenges answer once, counters only move forwards. */

let knex: Knex;
let customer: TestCustomer;

beforeAll(async () => {
  knex = createKnex(testDatabaseUrl(), 2);
  customer = await createTestCustomer(knex, 'Sam Store');
});

afterAll(async () => {
  await knex.destroy();
});

const fresh = () => randomBytes(16).toString('base64url');
const inMinutes = (minutes: number) => new Date(Date.now() + minutes * 60_000);

test('a challenge is taken once, before it expires, by the binding and purpose it was issued for', async () => {
  const [once, expired, elsewhere] = [fresh(), fresh(), fresh()];
  await storeChallenge(knex, {
    challenge: once,
    purpose: 'authentication',
    binding: 'b',
    expiresAt: inMinutes(3),
  });
  await storeChallenge(knex, {
    challenge: expired,
    purpose: 'authentication',
    binding: 'b',
    expiresAt: inMinutes(-1),
  });
  await storeChallenge(knex, {
    challenge: elsewhere,
    purpose: 'authentication',
    binding: 'b',
    expiresAt: inMinutes(3),
  });

  expect(await consumeChallenge(knex, once, { purpose: 'registration', binding: 'b' })).toBe(false);
  expect(await consumeChallenge(knex, once, { purpose: 'authentication', binding: 'b' })).toBe(false);
  expect(await consumeChallenge(knex, expired, { purpose: 'authentication', binding: 'b' })).toBe(false);
  expect(await consumeChallenge(knex, elsewhere, { purpose: 'authentication', binding: 'other' })).toBe(
    false,
  );
  expect(await consumeChallenge(knex, fresh(), { purpose: 'authentication', binding: 'b' })).toBe(false);

  const good = fresh();
  await storeChallenge(knex, {
    challenge: good,
    purpose: 'registration',
    binding: 'b',
    customerId: customer.id,
    expiresAt: inMinutes(3),
  });
  expect(await consumeChallenge(knex, good, { purpose: 'registration', binding: 'b' })).toBe(false);
  const again = fresh();
  await storeChallenge(knex, {
    challenge: again,
    purpose: 'registration',
    binding: 'b',
    customerId: customer.id,
    expiresAt: inMinutes(3),
  });
  expect(
    await consumeChallenge(knex, again, { purpose: 'registration', binding: 'b', customerId: customer.id }),
  ).toBe(true);
  expect(
    await consumeChallenge(knex, again, { purpose: 'registration', binding: 'b', customerId: customer.id }),
  ).toBe(false);
});

test("a passkey's counter only moves forwards, and only once per stored value", async () => {
  const credentialId = fresh();
  const added = await addPasskey(knex, {
    customerId: customer.id,
    credentialId,
    publicKey: new Uint8Array([1]),
    counter: 5,
    transports: [],
    deviceType: 'singleDevice',
    backedUp: false,
    name: 'Key',
  });
  if (!added) throw new Error('not added');
  expect(await recordPasskeyUse(knex, added, { newCounter: 4, backedUp: false })).toBe(false);
  expect(await recordPasskeyUse(knex, added, { newCounter: 6, backedUp: false })).toBe(true);
  // A second request checked against the same old counter loses the race.
  expect(await recordPasskeyUse(knex, added, { newCounter: 7, backedUp: false })).toBe(false);
  const stored = await findPasskeyByCredentialId(knex, credentialId);
  expect(stored).toMatchObject({ counter: 6 });
  expect(stored?.lastUsedAt).toBeInstanceOf(Date);

  expect(await addPasskey(knex, { ...added, name: 'Again' })).toBeUndefined();
  await expect(addPasskey(knex, { ...added, credentialId: fresh(), name: ' ' })).rejects.toThrow('name');
});

test('a device-bound passkey is a hardware key, a synced one a software key; both are two factors', () => {
  expect(amrFor('singleDevice')).toEqual(['hwk', 'mfa']);
  expect(amrFor('multiDevice')).toEqual(['swk', 'mfa']);
});
