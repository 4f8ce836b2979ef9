/**
 * What a payment request (RFC 9396 `payment_initiation` authorization details) may say, checked
 * strictly and without side effects: exactly one payment per request, in euros, to one valid IBAN,
 * with nothing the bank does not understand. Anything else is refused as a whole
 * (InvalidPaymentDetails), so a customer is never shown, and never approves, half of a request.
 * The approved detail adds the account the customer chose to pay from (`debtorAccount`).
 */

import { groupedIban, isValidIban } from './iban.ts';
import { isPaymentText } from './payment-text.ts';

export const PAYMENT_INITIATION = 'payment_initiation';

const ACTIONS = ['initiate', 'status'] as const;
export type PaymentAction = (typeof ACTIONS)[number];

// Type aliases rather than interfaces, so that they are JSON objects to oidc-provider's types too.
export type PaymentInitiation = {
  type: typeof PAYMENT_INITIATION;
  instructedAmount: { currency: 'EUR'; amount: string };
  creditorName: string;
  creditorAccount: { iban: string };
  remittanceInformationUnstructured?: string;
  locations?: string[];
  actions?: PaymentAction[];
};

/** The payment as the customer approved it: the request's detail and the account it is paid from. */
export type ApprovedPayment = PaymentInitiation & { debtorAccount: { iban: string } };

export interface PaymentPolicy {
  /** PAYMENT_MAX_AMOUNT: the most one payment may move, two decimals ("10000.00"). */
  maxAmount: string;
  /** BANK_API_URL: the one location a payment may name. */
  bankApiUrl: string;
}

/** A payment request the bank refuses; its message says which rule, for the app's developer. */
export class InvalidPaymentDetails extends Error {
  override name = 'InvalidPaymentDetails';
}

const MEMBERS = new Set([
  'type',
  'instructedAmount',
  'creditorName',
  'creditorAccount',
  'remittanceInformationUnstructured',
  'locations',
  'actions',
]);

// Two decimals exactly; at most 15 integer digits keeps any amount exact in BigInt cents.
const AMOUNT = /^(0|[1-9]\d{0,14})\.\d{2}$/;

// Control, format (bidi overrides), surrogate, private-use and unassigned characters, and line or
// paragraph separators: none of them belongs in a name or reference a customer reads.
function refuse(message: string): never {
  throw new InvalidPaymentDetails(message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function exactMembers(value: unknown, name: string, allowed: readonly string[]): Record<string, unknown> {
  if (!isObject(value)) refuse(`${name} must be a JSON object`);
  const unknown = Object.keys(value).filter((key) => !allowed.includes(key));
  if (unknown.length) refuse(`${name} has unknown member(s): ${unknown.join(', ')}`);
  return value;
}

/** "25.00" → 2500n; undefined unless it is a decimal string with exactly two decimals. */
function amountInCents(amount: string): bigint | undefined {
  if (!AMOUNT.test(amount)) return undefined;
  return BigInt(amount.replace('.', ''));
}

function plainText(value: unknown, name: string, maxLength: number): string {
  if (typeof value !== 'string') refuse(`${name} must be a string`);
  if (!isPaymentText(value, maxLength)) refuse(`${name} must be 1 to ${maxLength} characters of plain text`);
  return value;
}

function instructedAmount(value: unknown, policy: PaymentPolicy): PaymentInitiation['instructedAmount'] {
  const amount = exactMembers(value, 'instructedAmount', ['currency', 'amount']);
  if (amount.currency !== 'EUR') refuse('instructedAmount.currency must be "EUR"');
  const cents = typeof amount.amount === 'string' ? amountInCents(amount.amount) : undefined;
  if (cents === undefined || cents <= 0n) {
    refuse('instructedAmount.amount must be a positive decimal string with two decimals, like "25.00"');
  }
  if (cents > (amountInCents(policy.maxAmount) ?? 0n)) {
    refuse(`instructedAmount.amount is above the limit of ${policy.maxAmount} per payment`);
  }
  return { currency: 'EUR', amount: String(amount.amount) };
}

function creditorAccount(value: unknown): PaymentInitiation['creditorAccount'] {
  const account = exactMembers(value, 'creditorAccount', ['iban']);
  if (typeof account.iban !== 'string' || !isValidIban(account.iban)) {
    refuse('creditorAccount.iban must be a valid IBAN in electronic format (capitals, no spaces)');
  }
  return { iban: account.iban };
}

function locations(value: unknown, policy: PaymentPolicy): string[] {
  if (!Array.isArray(value) || value.length !== 1 || value[0] !== policy.bankApiUrl) {
    refuse(`locations must be ["${policy.bankApiUrl}"]`);
  }
  return [policy.bankApiUrl];
}

function actions(value: unknown): PaymentAction[] {
  const known: readonly unknown[] = ACTIONS;
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    new Set(value).size !== value.length ||
    !value.every((action) => known.includes(action))
  ) {
    refuse(`actions must be some of ${ACTIONS.map((action) => `"${action}"`).join(', ')}, each once`);
  }
  return value as PaymentAction[];
}

/** One `payment_initiation` detail, checked member by member. */
export function parsePaymentInitiation(detail: unknown, policy: PaymentPolicy): PaymentInitiation {
  const fields = exactMembers(detail, 'the payment_initiation detail', [...MEMBERS]);
  if (fields.type !== PAYMENT_INITIATION) refuse(`type must be "${PAYMENT_INITIATION}"`);
  const payment: PaymentInitiation = {
    type: PAYMENT_INITIATION,
    instructedAmount: instructedAmount(fields.instructedAmount, policy),
    creditorName: plainText(fields.creditorName, 'creditorName', 70),
    creditorAccount: creditorAccount(fields.creditorAccount),
  };
  if (fields.remittanceInformationUnstructured !== undefined) {
    payment.remittanceInformationUnstructured = plainText(
      fields.remittanceInformationUnstructured,
      'remittanceInformationUnstructured',
      140,
    );
  }
  if (fields.locations !== undefined) payment.locations = locations(fields.locations, policy);
  if (fields.actions !== undefined) payment.actions = actions(fields.actions);
  return payment;
}

/** A request's whole `authorization_details`: exactly one payment, nothing beside it. */
export function parsePaymentRequest(details: unknown, policy: PaymentPolicy): PaymentInitiation {
  if (!Array.isArray(details) || details.length !== 1) {
    refuse('authorization_details must hold exactly one payment_initiation detail');
  }
  return parsePaymentInitiation(details[0], policy);
}

/** The payment in the bank's words: "Pay €25.00 to Jo Bloggs (NL91 ABNA 0417 1643 00), reference 'Dinner'". */
export function paymentWording(payment: PaymentInitiation): string {
  const reference = payment.remittanceInformationUnstructured;
  return (
    `Pay €${payment.instructedAmount.amount} to ${payment.creditorName} ` +
    `(${groupedIban(payment.creditorAccount.iban)})` +
    (reference === undefined ? '' : `, reference '${reference}'`)
  );
}

/** Whether a balance ("120.00", in the payment's currency) covers the payment. */
export function covers(balance: { currency: string; amount: string }, payment: PaymentInitiation): boolean {
  const available = /^-?\d+\.\d{2}$/.test(balance.amount)
    ? BigInt(balance.amount.replace('.', ''))
    : undefined;
  const needed = amountInCents(payment.instructedAmount.amount);
  return (
    balance.currency === payment.instructedAmount.currency &&
    available !== undefined &&
    needed !== undefined &&
    available >= needed
  );
}
