import { demoAccounts, seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { formatAmount, parseAmount } from '../../src/bank-api/money.ts';
import { ibanFor, normaliseIban } from '../../src/payments/iban.ts';
import { createKnex } from '../../src/db/knex.ts';
import { testBankApiDatabaseUrl } from '../support/bank-api.ts';
import { createTestCustomer, useTestPassbook } from '../support/passbook.ts';

const passbook = useTestPassbook();
// The seed runs as the bank API runs: with its own role, in its own schema.
const bank = createKnex(testBankApiDatabaseUrl(), 4);

afterAll(async () => {
  await bank.destroy();
});

const AS_OF = new Date('2026-11-20T12:00:00Z');

test('the demo history is the same for the same customer and day, and differs between customers', () => {
  const first = demoAccounts('11111111-1111-4111-8111-111111111111', AS_OF);
  const again = demoAccounts('11111111-1111-4111-8111-111111111111', AS_OF);
  const other = demoAccounts('22222222-2222-4222-8222-222222222222', AS_OF);
  expect(again).toEqual(first);
  expect(other.map((account) => account.iban)).not.toEqual(first.map((account) => account.iban));
  expect(first).toHaveLength(3);
});

test('the demo history covers about three months, up to the day before, with salary and rent each month', () => {
  const [everyday] = demoAccounts('11111111-1111-4111-8111-111111111111', AS_OF);
  const times = everyday?.transactions.map((entry) => entry.bookedAt.getTime()) ?? [];
  expect(Math.max(...times)).toBeLessThan(Date.parse('2026-11-20T00:00:00Z'));
  expect(Math.min(...times)).toBeGreaterThanOrEqual(Date.parse('2026-08-20T00:00:00Z'));
  const salaries = everyday?.transactions.filter((entry) => entry.category === 'income') ?? [];
  const rents = everyday?.transactions.filter((entry) => entry.category === 'housing') ?? [];
  expect(salaries).toHaveLength(3);
  expect(rents).toHaveLength(3);
  for (const account of demoAccounts('11111111-1111-4111-8111-111111111111', AS_OF)) {
    expect(normaliseIban(account.iban)).toBe(account.iban);
  }
});

test('seeding a customer twice, even at once, opens the accounts once', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const opened = await Promise.all([
    seedDemoAccounts(bank, customer.id),
    seedDemoAccounts(bank, customer.id),
  ]);
  expect(opened.reduce((sum, count) => sum + count, 0)).toBe(3);
  expect(await seedDemoAccounts(bank, customer.id)).toBe(0);
  const accounts = await bank('bank.accounts').where({ customer_id: customer.id }).select('id');
  expect(accounts).toHaveLength(3);
  const [row] = await bank('bank.transactions')
    .whereIn(
      'account_id',
      accounts.map((account: { id: string }) => account.id),
    )
    .count<{ count: string }[]>();
  const expected = demoAccounts(customer.id, new Date()).reduce(
    (sum, account) => sum + account.transactions.length,
    0,
  );
  expect(Number(row?.count)).toBe(expected);
});

test('amounts are read and written as exact cents', () => {
  expect(parseAmount('12.5')).toBe(1250);
  expect(parseAmount('0.07')).toBe(7);
  expect(parseAmount('100')).toBe(10000);
  for (const bad of ['', '.5', '01.00', '1.234', '1e3', '-1', ' 1', '1,00', '1234567890']) {
    expect(parseAmount(bad)).toBeUndefined();
  }
  expect(formatAmount(1250)).toBe('12.50');
  expect(formatAmount(-99)).toBe('-0.99');
  expect(formatAmount(0)).toBe('0.00');
});

test('IBANs are checked with their check digits', () => {
  expect(normaliseIban('nl91 abna 0417 1643 00')).toBe('NL91ABNA0417164300');
  expect(normaliseIban('GB82 WEST 1234 5698 7654 32')).toBe('GB82WEST12345698765432');
  expect(normaliseIban('NL91ABNA0417164301')).toBeUndefined();
  expect(normaliseIban('not an iban')).toBeUndefined();
  expect(ibanFor('NL', 'ABNA0417164300')).toBe('NL91ABNA0417164300');
});
