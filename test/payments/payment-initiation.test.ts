import {
  InvalidPaymentDetails,
  covers,
  parsePaymentInitiation,
  parsePaymentRequest,
  paymentWording,
  type PaymentPolicy,
} from '../../src/payments/payment-initiation.ts';
import { groupedIban, isValidIban } from '../../src/payments/iban.ts';

const policy: PaymentPolicy = { maxAmount: '10000.00', bankApiUrl: 'https://bank-api.example' };

const valid = {
  type: 'payment_initiation',
  instructedAmount: { currency: 'EUR', amount: '25.00' },
  creditorName: 'Jo Bloggs',
  creditorAccount: { iban: 'NL91ABNA0417164300' },
  remittanceInformationUnstructured: 'Dinner',
  locations: ['https://bank-api.example'],
  actions: ['initiate', 'status'],
};

function refusal(detail: unknown): string {
  try {
    parsePaymentInitiation(detail, policy);
  } catch (error) {
    if (error instanceof InvalidPaymentDetails) return error.message;
    throw error;
  }
  throw new Error('the detail was accepted');
}

test('a valid payment is read back exactly, and worded as the bank says it', () => {
  const payment = parsePaymentRequest([valid], policy);
  expect(payment).toEqual(valid);
  expect(paymentWording(payment)).toBe(
    "Pay €25.00 to Jo Bloggs (NL91 ABNA 0417 1643 00), reference 'Dinner'",
  );
});

test('the optional members may be left out', () => {
  const { type, instructedAmount, creditorName, creditorAccount } = valid;
  const minimal = { type, instructedAmount, creditorName, creditorAccount };
  expect(parsePaymentInitiation(minimal, policy)).toEqual(minimal);
  expect(paymentWording(parsePaymentInitiation(minimal, policy))).toBe(
    'Pay €25.00 to Jo Bloggs (NL91 ABNA 0417 1643 00)',
  );
});

test('a request holds exactly one payment', () => {
  expect(() => parsePaymentRequest([], policy)).toThrow(InvalidPaymentDetails);
  expect(() => parsePaymentRequest([valid, valid], policy)).toThrow(/exactly one/);
  expect(() => parsePaymentRequest(valid, policy)).toThrow(InvalidPaymentDetails);
});

test.each([
  ['another currency', { currency: 'USD', amount: '25.00' }, /currency must be "EUR"/],
  ['a number, not a string', { currency: 'EUR', amount: 25 }, /amount must be/],
  ['one decimal', { currency: 'EUR', amount: '25.0' }, /amount must be/],
  ['no decimals', { currency: 'EUR', amount: '25' }, /amount must be/],
  ['three decimals', { currency: 'EUR', amount: '25.000' }, /amount must be/],
  ['zero', { currency: 'EUR', amount: '0.00' }, /amount must be/],
  ['a negative amount', { currency: 'EUR', amount: '-5.00' }, /amount must be/],
  ['a leading zero', { currency: 'EUR', amount: '025.00' }, /amount must be/],
  ['an exponent', { currency: 'EUR', amount: '1e3' }, /amount must be/],
  ['above the limit', { currency: 'EUR', amount: '10000.01' }, /above the limit of 10000\.00/],
  ['an unknown member', { currency: 'EUR', amount: '25.00', fee: '1.00' }, /unknown member\(s\): fee/],
  ['not an object', '25.00', /instructedAmount must be a JSON object/],
])('instructedAmount with %s is refused', (_name, instructedAmount, message) => {
  expect(refusal({ ...valid, instructedAmount })).toMatch(message);
});

test('the limit itself is allowed, and the limit follows the policy', () => {
  expect(
    parsePaymentInitiation({ ...valid, instructedAmount: { currency: 'EUR', amount: '10000.00' } }, policy)
      .instructedAmount.amount,
  ).toBe('10000.00');
  expect(() => parsePaymentInitiation(valid, { ...policy, maxAmount: '20.00' })).toThrow(/limit of 20\.00/);
});

test.each([
  ['empty', ''],
  ['blank', '   '],
  ['too long (71 characters)', 'x'.repeat(71)],
  ['a line break', 'Jo\nBloggs'],
  ['a NUL', 'Jo\u0000Bloggs'],
  ['a right-to-left override', 'Jo \u202eBloggs'],
  ['a lone surrogate', 'Jo \ud800'],
  ['a number', 42],
])('a creditorName that is %s is refused', (_name, creditorName) => {
  expect(refusal({ ...valid, creditorName })).toMatch(/creditorName must be/);
});

test('a creditorName of 70 characters, accents included, is allowed', () => {
  const name = `Zoë ${'é'.repeat(66)}`;
  expect(parsePaymentInitiation({ ...valid, creditorName: name }, policy).creditorName).toBe(name);
});

test.each([
  ['empty', ''],
  ['too long (141 characters)', 'r'.repeat(141)],
  ['a tab', 'Dinner\tout'],
])('a remittanceInformationUnstructured that is %s is refused', (_name, reference) => {
  expect(refusal({ ...valid, remittanceInformationUnstructured: reference })).toMatch(
    /remittanceInformationUnstructured must be/,
  );
});

describe('the creditor IBAN', () => {
  test.each(['NL91ABNA0417164300', 'DE89370400440532013000', 'GB82WEST12345698765432', 'BE68539007547034'])(
    '%s has right check digits',
    (iban) => {
      expect(isValidIban(iban)).toBe(true);
      expect(
        parsePaymentInitiation({ ...valid, creditorAccount: { iban } }, policy).creditorAccount.iban,
      ).toBe(iban);
    },
  );

  test.each([
    ['a wrong check digit', 'NL92ABNA0417164300'],
    ['two digits swapped', 'NL91ABNA0417164030'],
    ['spaces (print format)', 'NL91 ABNA 0417 1643 00'],
    ['lower case', 'nl91abna0417164300'],
    ['too short', 'NL91ABNA04'],
    ['punctuation', 'NL91-ABNA-0417164300'],
  ])('with %s is refused', (_name, iban) => {
    expect(isValidIban(iban)).toBe(false);
    expect(refusal({ ...valid, creditorAccount: { iban } })).toMatch(
      /creditorAccount\.iban must be a valid IBAN/,
    );
  });

  test('an unknown member beside it is refused', () => {
    expect(refusal({ ...valid, creditorAccount: { iban: 'NL91ABNA0417164300', bic: 'ABNANL2A' } })).toMatch(
      /creditorAccount has unknown member\(s\): bic/,
    );
  });

  test('is printed in groups of four', () => {
    expect(groupedIban('NL91ABNA0417164300')).toBe('NL91 ABNA 0417 1643 00');
    expect(groupedIban('BE68539007547034')).toBe('BE68 5390 0754 7034');
  });
});

test.each([
  ['another host', ['https://elsewhere.example']],
  ['a trailing slash', ['https://bank-api.example/']],
  ['two locations', ['https://bank-api.example', 'https://bank-api.example']],
  ['none', []],
])('locations naming %s are refused', (_name, locations) => {
  expect(refusal({ ...valid, locations })).toMatch(/locations must be \["https:\/\/bank-api\.example"\]/);
});

test.each([
  ['cancel', ['initiate', 'cancel']],
  ['a duplicate', ['initiate', 'initiate']],
  ['none', []],
])('actions with %s are refused', (_name, actions) => {
  expect(refusal({ ...valid, actions })).toMatch(/actions must be some of "initiate", "status"/);
});

test.each([
  [
    'at the top',
    { ...valid, debtorAccount: { iban: 'DE89370400440532013000' } },
    /unknown member\(s\): debtorAccount/,
  ],
  [
    'at the top (RFC 9396 privileges)',
    { ...valid, privileges: ['admin'] },
    /unknown member\(s\): privileges/,
  ],
])('an unknown member %s is refused', (_name, detail, message) => {
  expect(refusal(detail)).toMatch(message);
});

test('a missing required member is refused', () => {
  const withoutName: Record<string, unknown> = { ...valid };
  delete withoutName.creditorName;
  expect(refusal(withoutName)).toMatch(/creditorName must be a string/);
  const withoutAmount: Record<string, unknown> = { ...valid };
  delete withoutAmount.instructedAmount;
  expect(refusal(withoutAmount)).toMatch(/instructedAmount must be a JSON object/);
});

test('whether a balance covers the payment', () => {
  const payment = parsePaymentInitiation(valid, policy);
  expect(covers({ currency: 'EUR', amount: '25.00' }, payment)).toBe(true);
  expect(covers({ currency: 'EUR', amount: '24.99' }, payment)).toBe(false);
  expect(covers({ currency: 'EUR', amount: '-100.00' }, payment)).toBe(false);
  expect(covers({ currency: 'GBP', amount: '500.00' }, payment)).toBe(false);
});
