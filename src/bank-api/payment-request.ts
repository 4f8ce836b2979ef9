import { ApiError } from './errors.ts';
import { parseAmount } from './money.ts';
import { normaliseIban } from '../payments/iban.ts';
import { isPaymentText } from '../payments/payment-text.ts';

/**
 * A payment in the words of a `payment_initiation` authorization detail (RFC 9396 §2), read from
 * the body of POST /payments or from the detail the customer approved, with the same strict rules
 * for both, so that the two can be compared member by member:
 *
 *   { "instructedAmount": { "currency": "EUR", "amount": "25.00" },
 *     "creditorName": "Jo Bloggs", "creditorAccount": { "iban": "NL91ABNA0417164300" },
 *     "remittanceInformationUnstructured": "Dinner", "debtorAccount": { "iban": "…" } }
 */

export interface PaymentFields {
  amountMinor: number;
  currency: string;
  creditorName: string;
  /** Without spaces, in capitals. */
  creditorIban: string;
  remittance: string | undefined;
  debtorIban: string;
}

const REQUIRED = ['instructedAmount', 'creditorName', 'creditorAccount', 'debtorAccount'] as const;
const OPTIONAL = ['remittanceInformationUnstructured'] as const;
const PAYMENT_MEMBERS: ReadonlySet<string> = new Set([...REQUIRED, ...OPTIONAL]);

/** The most one payment may move in this demo bank, in cents. */
const PAYMENT_LIMIT_MINOR = 1_000_000;

/** Why a payment cannot be read; the caller decides what that means for its answer. */
export class PaymentShapeError extends Error {
  override name = 'PaymentShapeError';
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyMembers(value: Record<string, unknown>, allowed: readonly string[], field: string): void {
  const unknown = Object.keys(value).filter((name) => !allowed.includes(name));
  if (unknown.length) throw new PaymentShapeError(`${field} has unknown member(s): ${unknown.join(', ')}`);
}

// The consent screen's rule (src/payments/payment-text.ts), so that what was approved can be read.
function plainText(value: unknown, field: string, maxLength: number): string {
  if (typeof value !== 'string') throw new PaymentShapeError(`${field} must be a string`);
  if (!isPaymentText(value, maxLength)) {
    throw new PaymentShapeError(`${field} must be 1 to ${maxLength} characters of plain text`);
  }
  return value;
}

function amountOf(value: unknown): { amountMinor: number; currency: string } {
  if (!isJsonObject(value)) throw new PaymentShapeError('instructedAmount must be an object');
  onlyMembers(value, ['currency', 'amount'], 'instructedAmount');
  const { amount, currency } = value;
  const amountMinor = typeof amount === 'string' ? parseAmount(amount) : undefined;
  if (amountMinor === undefined || amountMinor <= 0) {
    throw new PaymentShapeError(
      'instructedAmount.amount must be a positive decimal string with at most two decimals, like "12.50"',
    );
  }
  if (amountMinor > PAYMENT_LIMIT_MINOR) {
    throw new PaymentShapeError('instructedAmount.amount is above the limit of 10000.00 per payment');
  }
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) {
    throw new PaymentShapeError('instructedAmount.currency must be a three-letter ISO 4217 code, like "EUR"');
  }
  return { amountMinor, currency };
}

function ibanOf(value: unknown, field: string): string {
  if (!isJsonObject(value)) throw new PaymentShapeError(`${field} must be an object: { "iban": "…" }`);
  onlyMembers(value, ['iban'], field);
  const iban = typeof value.iban === 'string' ? normaliseIban(value.iban) : undefined;
  if (!iban) throw new PaymentShapeError(`${field}.iban must be a valid IBAN`);
  return iban;
}

/**
 * The payment members of `source`; `ignored` members may be present and are not read (a detail's
 * `type`, `locations`, `actions`), any other unknown member is a PaymentShapeError.
 */
export function readPayment(source: unknown, ignored: ReadonlySet<string> = new Set()): PaymentFields {
  if (!isJsonObject(source)) throw new PaymentShapeError('the payment must be a JSON object');
  const unknown = Object.keys(source).filter((name) => !PAYMENT_MEMBERS.has(name) && !ignored.has(name));
  if (unknown.length) throw new PaymentShapeError(`unknown member(s): ${unknown.join(', ')}`);
  const missing = REQUIRED.filter((name) => source[name] === undefined);
  if (missing.length) throw new PaymentShapeError(`missing member(s): ${missing.join(', ')}`);
  const remittance = source.remittanceInformationUnstructured;
  return {
    ...amountOf(source.instructedAmount),
    creditorName: plainText(source.creditorName, 'creditorName', 70),
    creditorIban: ibanOf(source.creditorAccount, 'creditorAccount'),
    remittance:
      remittance === undefined ? undefined : plainText(remittance, 'remittanceInformationUnstructured', 140),
    debtorIban: ibanOf(source.debtorAccount, 'debtorAccount'),
  };
}

/** The body of POST /payments: the payment members only, or a 400 that says which one is wrong. */
export function parsePaymentRequest(body: unknown): PaymentFields {
  try {
    return readPayment(body);
  } catch (error) {
    if (error instanceof PaymentShapeError) throw new ApiError(400, 'invalid_request', error.message);
    throw error;
  }
}

const COMPARED: readonly [keyof PaymentFields, string][] = [
  ['amountMinor', 'instructedAmount.amount'],
  ['currency', 'instructedAmount.currency'],
  ['creditorName', 'creditorName'],
  ['creditorIban', 'creditorAccount'],
  ['remittance', 'remittanceInformationUnstructured'],
  ['debtorIban', 'debtorAccount'],
];

/** The members in which `requested` is not what was `approved`; empty when it is exactly that. */
export function differences(approved: PaymentFields, requested: PaymentFields): string[] {
  return COMPARED.filter(([member]) => approved[member] !== requested[member]).map(([, name]) => name);
}
