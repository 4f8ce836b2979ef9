/**
 * Which of a customer's accounts an app may read: the `account_information` authorization detail
 * (RFC 9396 shape) that the consent screen writes on an ordinary grant, and that rides on the
 * grant's codes, access and refresh tokens (authorization-details.ts) to the bank API's
 * introspection. Apps never request this type (it is not offered in discovery): only the
 * customer's choice on the consent screen, or a remembered consent copying it, makes one.
 *
 *   { "type": "account_information", "actions": ["read"], "accounts": [{ "iban": "NL…" }] }
 *
 * A grant holds at most one such detail, and a new choice replaces it. A payment's grant holds a
 * `payment_initiation` detail instead and never one of these.
 */

import { PAYMENT_INITIATION } from '../payments/payment-initiation.ts';

export const ACCOUNT_INFORMATION = 'account_information';

/** The scopes that read accounts, and so need the customer to choose which. */
const ACCOUNT_SCOPES: readonly string[] = ['accounts:read', 'transactions:read'];

// A type alias rather than an interface, so that it is a JSON object to oidc-provider's types too.
export type AccountInformation = {
  type: typeof ACCOUNT_INFORMATION;
  actions: ['read'];
  accounts: { iban: string }[];
};

type Details = readonly { type: string; [member: string]: unknown }[] | undefined;

export function accountInformation(ibans: readonly string[]): AccountInformation {
  return { type: ACCOUNT_INFORMATION, actions: ['read'], accounts: ibans.map((iban) => ({ iban })) };
}

/** Whether these scopes read accounts, so that the consent screen must ask which. */
export function readsAccounts(scopes: Iterable<string>): boolean {
  return [...scopes].some((scope) => ACCOUNT_SCOPES.includes(scope));
}

/** The grant's (or token's) account choice as a list of one detail, or undefined when it has none. */
export function accountInformationOf(details: Details): AccountInformation[] | undefined {
  const found = details?.find((detail) => detail.type === ACCOUNT_INFORMATION);
  if (!found || !Array.isArray(found.accounts)) return undefined;
  const ibans = found.accounts
    .map((account: unknown) =>
      typeof account === 'object' && account !== null ? (account as Record<string, unknown>).iban : undefined,
    )
    .filter((iban): iban is string => typeof iban === 'string');
  return [accountInformation(ibans)];
}

/** The IBANs the choice shares; empty when there is no choice. */
export function sharedIbans(details: Details): string[] {
  return accountInformationOf(details)?.[0]?.accounts.map((account) => account.iban) ?? [];
}

/** Whether these details hold a payment: such a grant is the payment's own, never reused. */
export function holdsPayment(details: Details): boolean {
  return details?.some((detail) => detail.type === PAYMENT_INITIATION) ?? false;
}
