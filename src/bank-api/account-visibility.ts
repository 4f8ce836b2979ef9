import type { Knex } from '../db/knex.ts';
import type { AccessToken } from './introspection.ts';
import { findAccount, listAccounts, type Account } from './ledger.ts';

/**
 * Which of the customer's accounts a token may read: only those the customer chose on Passbook's
 * consent screen, which Passbook puts on the token as an `account_information` authorization
 * detail (RFC 9396 shape) listing their IBANs. A token without one sees no account at all: the
 * bank fails closed rather than read a missing choice as "everything". An account not shared
 * answers exactly as another customer's does.
 */

const ACCOUNT_INFORMATION = 'account_information';

/** The IBANs the token's account_information detail lists for reading; empty when it has none. */
function sharedIbans(token: AccessToken): ReadonlySet<string> {
  const details = token.authorizationDetails.filter((detail) => detail.type === ACCOUNT_INFORMATION);
  // More than one choice is not something Passbook issues: read it as none.
  const [detail, ...others] = details;
  if (!detail || others.length > 0) return new Set();
  if (detail.actions !== undefined && !detail.actions.includes('read')) return new Set();
  const accounts = Array.isArray(detail.accounts) ? (detail.accounts as unknown[]) : [];
  const ibans = accounts.map((account) =>
    typeof account === 'object' && account !== null ? (account as Record<string, unknown>).iban : undefined,
  );
  return new Set(ibans.filter((iban): iban is string => typeof iban === 'string'));
}

/** The customer's accounts this token may read, in the bank's order. */
export async function visibleAccounts(knex: Knex, token: AccessToken): Promise<Account[]> {
  const shared = sharedIbans(token);
  if (shared.size === 0) return [];
  const accounts = await listAccounts(knex, token.customerId);
  return accounts.filter((account) => shared.has(account.iban));
}

/** One of the customer's accounts, if this token may read it. */
export async function visibleAccount(
  knex: Knex,
  token: AccessToken,
  accountId: string,
): Promise<Account | undefined> {
  const account = await findAccount(knex, token.customerId, accountId);
  return account && sharedIbans(token).has(account.iban) ? account : undefined;
}
