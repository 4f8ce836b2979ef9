/**
 * Settle Up's own logic: the one debt this example knows (you owe Jo for dinner), the payment
 * that settles it as a `payment_initiation` authorization detail (RFC 9396), and reading back
 * what the bank approved.
 */

export interface Money {
  currency: string;
  /** A decimal string, as the bank writes it: "25.00". */
  amount: string;
}

/** The payment's members, as asked for, approved and booked (never `type`, `locations`, `actions`). */
export interface PaymentFields {
  instructedAmount: Money;
  creditorName: string;
  creditorAccount: { iban: string };
  remittanceInformationUnstructured?: string;
}

/** What the customer approved: the payment and the account they chose to pay from. */
export interface ApprovedPayment extends PaymentFields {
  debtorAccount: { iban: string };
}

export interface Debt {
  /** Who is owed, as Settle Up shows them: "Jo". */
  friend: string;
  payment: PaymentFields;
}

export const DINNER_WITH_JO: Debt = {
  friend: 'Jo',
  payment: {
    instructedAmount: { currency: 'EUR', amount: '25.00' },
    creditorName: 'Jo Bloggs',
    creditorAccount: { iban: 'NL91ABNA0417164300' },
    remittanceInformationUnstructured: 'Dinner',
  },
};

const PAYMENT_INITIATION = 'payment_initiation';

export function authorizationDetailFor(debt: Debt): [{ type: string } & PaymentFields] {
  return [{ type: PAYMENT_INITIATION, ...debt.payment }];
}

export function formatMoney({ currency, amount }: Money): string {
  return new Intl.NumberFormat('en-GB', { style: 'currency', currency }).format(Number(amount));
}

/** "NL91ABNA0417164300" → "NL91 ABNA 0417 1643 00". */
export function formatIban(iban: string): string {
  return iban.replace(/(.{4})(?=.)/g, '$1 ');
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function ibanOf(value: unknown): string | undefined {
  return isObject(value) && typeof value.iban === 'string' ? value.iban : undefined;
}

function sameFields(approved: Json, asked: PaymentFields): boolean {
  const amount = approved.instructedAmount;
  return (
    isObject(amount) &&
    amount.currency === asked.instructedAmount.currency &&
    amount.amount === asked.instructedAmount.amount &&
    approved.creditorName === asked.creditorName &&
    ibanOf(approved.creditorAccount) === asked.creditorAccount.iban &&
    approved.remittanceInformationUnstructured === asked.remittanceInformationUnstructured
  );
}

/**
 * The payment the bank says the customer approved, from the token response's
 * `authorization_details`; undefined unless it is exactly the payment Settle Up asked for, from
 * an account the customer chose.
 */
export function approvedPayment(details: unknown, asked: PaymentFields): ApprovedPayment | undefined {
  if (!Array.isArray(details) || details.length !== 1) return undefined;
  const [detail] = details as unknown[];
  if (!isObject(detail) || detail.type !== PAYMENT_INITIATION || !sameFields(detail, asked)) return undefined;
  const debtorIban = ibanOf(detail.debtorAccount);
  if (!debtorIban) return undefined;
  return { ...asked, debtorAccount: { iban: debtorIban } };
}
