import { createKnex, type Knex } from '../../src/db/knex.ts';
import { createCustomer, InvalidCustomerError, verifyCredentials } from '../../src/customers/customers.ts';
import { createTestCustomer, testDatabaseUrl } from '../support/passbook.ts';

let knex: Knex;

beforeAll(() => {
  knex = createKnex(testDatabaseUrl());
});

afterAll(async () => {
  await knex.destroy();
});

async function medianMs(work: () => Promise<unknown>, runs = 5): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    const started = performance.now();
    await work();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)] ?? 0;
}

test('the right password signs in, case-insensitively by username; a wrong one does not', async () => {
  const customer = await createTestCustomer(knex);
  expect(await verifyCredentials(knex, customer.username.toUpperCase(), customer.password)).toEqual({
    verified: true,
    customerId: customer.id,
  });
  expect(await verifyCredentials(knex, customer.username, `${customer.password}x`)).toEqual({
    verified: false,
    knownCustomerId: customer.id,
  });
  expect((await verifyCredentials(knex, customer.username, '')).verified).toBe(false);
  expect(await verifyCredentials(knex, 'nobody-by-this-name', customer.password)).toEqual({
    verified: false,
    knownCustomerId: undefined,
  });
});

test('an unknown username is checked against a dummy hash, so it costs what a wrong password costs', async () => {
  const customer = await createTestCustomer(knex);
  await verifyCredentials(knex, 'nobody-warm-up', 'x');
  const wrongPassword = await medianMs(() => verifyCredentials(knex, customer.username, 'not-the-password'));
  const unknownUser = await medianMs(() =>
    verifyCredentials(knex, 'nobody-by-this-name', 'not-the-password'),
  );
  // Without the dummy hash an unknown user answers in about a millisecond, against tens for argon2id.
  expect(unknownUser).toBeGreaterThan(wrongPassword * 0.4);
});

test('usernames are unique regardless of case, and weak input is refused before anything is stored', async () => {
  const customer = await createTestCustomer(knex);
  await expect(
    createCustomer(knex, { username: customer.username.toUpperCase(), password: 'long-enough-pw' }),
  ).rejects.toThrow(InvalidCustomerError);
  await expect(createCustomer(knex, { username: 'ab', password: 'long-enough-pw' })).rejects.toThrow(
    InvalidCustomerError,
  );
  await expect(createCustomer(knex, { username: 'short-pw-user', password: 'short' })).rejects.toThrow(
    InvalidCustomerError,
  );
  const stored = await knex('customers')
    .whereIn('username', ['ab', 'short-pw-user'])
    .count<{ count: string }[]>();
  expect(Number(stored[0]?.count)).toBe(0);
});
