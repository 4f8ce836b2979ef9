import { ApiError } from './errors.ts';
import { isUuid } from './ledger.ts';
import { normaliseIban, parseAmount } from './money.ts';

/**
 * The body of POST /payments, checked strictly: exactly these members, each of the right type
 * and shape, or a 400 that says which one is wrong. Nothing is written before this passes.
 *
 *   { "from_account_id": "<uuid>", "amount": "12.50", "currency": "EUR",
 *     "payee_name": "Jo Bloggs", "payee_iban": "NL91 ABNA 0417 1643 00", "reference": "Rent" }
 */

export interface PaymentRequest {
  fromAccountId: string;
  amountMinor: number;
  currency: string;
  payeeName: string;
  payeeIban: string;
  reference: string | undefined;
}

const REQUIRED = ['from_account_id', 'amount', 'currency', 'payee_name', 'payee_iban'] as const;
const OPTIONAL = ['reference'] as const;
const KNOWN: ReadonlySet<string> = new Set([...REQUIRED, ...OPTIONAL]);

/** The most one payment may move in this demo bank, in cents. */
const PAYMENT_LIMIT_MINOR = 1_000_000;

// Letters, digits, punctuation and spaces; no control characters or line breaks.
const PLAIN_TEXT = /^[\p{L}\p{N}\p{P}\p{Zs}\p{S}]+$/u;

function invalid(description: string): ApiError {
  return new ApiError(400, 'invalid_request', description);
}

function plainText(value: unknown, field: string, maxLength: number): string {
  if (typeof value !== 'string') throw invalid(`${field} must be a string`);
  const text = value.trim();
  if (text.length === 0 || text.length > maxLength || !PLAIN_TEXT.test(text)) {
    throw invalid(`${field} must be 1 to ${maxLength} characters of plain text`);
  }
  return text;
}

export function parsePaymentRequest(body: unknown): PaymentRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid('the body must be a JSON object');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((name) => !KNOWN.has(name));
  if (unknown.length) throw invalid(`unknown member(s): ${unknown.join(', ')}`);
  const missing = REQUIRED.filter((name) => fields[name] === undefined);
  if (missing.length) throw invalid(`missing member(s): ${missing.join(', ')}`);

  const { from_account_id: fromAccountId, amount, currency, payee_iban: iban, reference } = fields;
  if (typeof fromAccountId !== 'string' || !isUuid(fromAccountId)) {
    throw invalid('from_account_id must be the id of one of your accounts');
  }
  const amountMinor = typeof amount === 'string' ? parseAmount(amount) : undefined;
  if (amountMinor === undefined || amountMinor <= 0) {
    throw invalid('amount must be a positive decimal string with at most two decimals, like "12.50"');
  }
  if (amountMinor > PAYMENT_LIMIT_MINOR) throw invalid('amount is above the limit of 10000.00 per payment');
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) {
    throw invalid('currency must be a three-letter ISO 4217 code, like "EUR"');
  }
  const payeeIban = typeof iban === 'string' ? normaliseIban(iban) : undefined;
  if (!payeeIban) throw invalid('payee_iban must be a valid IBAN');
  return {
    fromAccountId,
    amountMinor,
    currency,
    payeeName: plainText(fields.payee_name, 'payee_name', 70),
    payeeIban,
    reference: reference === undefined ? undefined : plainText(reference, 'reference', 140),
  };
}
