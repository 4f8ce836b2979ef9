import type { Knex } from '../db/knex.ts';
import { MAX_IDENTIFIER_LENGTH, isStorableText } from '../db/storable.ts';

/**
 * Owner of `bank.accounts`, `bank.transactions` and `bank.payments`: the bank's demo ledger, in the
 * bank API's own schema (src/bank-api/migrations/). A customer is the `sub` of an introspected
 * token, nothing more. Every read is scoped to one customer, so no query here can reveal another
 * customer's data.
 */

// Named with their schema rather than found through search_path, so that what a query reads never
// depends on how the connection was set up.
const ACCOUNTS = 'bank.accounts';
const TRANSACTIONS = 'bank.transactions';
const PAYMENTS = 'bank.payments';

export interface Account {
  id: string;
  name: string;
  kind: 'current' | 'savings';
  iban: string;
  currency: string;
  balanceMinor: number;
}

export interface Transaction {
  id: string;
  accountId: string;
  bookedAt: Date;
  description: string;
  category: string;
  amountMinor: number;
  balanceAfterMinor: number;
  currency: string;
}

export interface PaymentOrder {
  customerId: string;
  /** The app that made the payment, kept for the customer's records. */
  clientId: string;
  accountId: string;
  amountMinor: number;
  currency: string;
  payeeName: string;
  payeeIban: string;
  reference: string | undefined;
}

export interface Payment {
  id: string;
  accountId: string;
  transactionId: string;
  amountMinor: number;
  currency: string;
  payeeName: string;
  payeeIban: string;
  reference: string | undefined;
  balanceAfterMinor: number;
  createdAt: Date;
}

export type PaymentOutcome =
  | { ok: true; payment: Payment }
  | {
      ok: false;
      reason: 'account_not_found' | 'currency_mismatch' | 'insufficient_funds' | 'unstorable_text';
    };

/** A new account with its history, oldest transaction first; the balance follows from them. */
export interface NewAccount {
  name: string;
  kind: Account['kind'];
  iban: string;
  currency: string;
  openingBalanceMinor: number;
  transactions: { bookedAt: Date; description: string; category: string; amountMinor: number }[];
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids come from URLs and bodies; anything that is not a uuid simply matches nothing. */
export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

interface AccountRow {
  id: string;
  name: string;
  kind: Account['kind'];
  iban: string;
  currency: string;
  balance_minor: string;
}

interface TransactionRow {
  id: string;
  account_id: string;
  booked_at: Date;
  description: string;
  category: string;
  amount_minor: string;
  balance_after_minor: string;
  currency: string;
}

const ACCOUNT_COLUMNS = ['id', 'name', 'kind', 'iban', 'currency', 'balance_minor'];

// PostgreSQL's bigint arrives as a string; cents stay well inside Number's exact range.
function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    iban: row.iban,
    currency: row.currency,
    balanceMinor: Number(row.balance_minor),
  };
}

function toTransaction(row: TransactionRow): Transaction {
  return {
    id: row.id,
    accountId: row.account_id,
    bookedAt: row.booked_at,
    description: row.description,
    category: row.category,
    amountMinor: Number(row.amount_minor),
    balanceAfterMinor: Number(row.balance_after_minor),
    currency: row.currency,
  };
}

export async function listAccounts(knex: Knex, customerId: string): Promise<Account[]> {
  const rows: AccountRow[] = await knex(ACCOUNTS)
    .where({ customer_id: customerId })
    .orderBy([{ column: 'created_at' }, { column: 'name' }])
    .select(ACCOUNT_COLUMNS);
  return rows.map(toAccount);
}

export async function findAccount(
  knex: Knex,
  customerId: string,
  accountId: string,
): Promise<Account | undefined> {
  if (!isUuid(accountId)) return undefined;
  const row: AccountRow | undefined = await knex(ACCOUNTS)
    .where({ id: accountId, customer_id: customerId })
    .first(ACCOUNT_COLUMNS);
  return row && toAccount(row);
}

/** The customer's transactions, newest first, from one account or from all of them. */
export async function listTransactions(
  knex: Knex,
  customerId: string,
  options: { accountId?: string; limit: number },
): Promise<Transaction[]> {
  const query = knex(`${TRANSACTIONS} as t`)
    .join(`${ACCOUNTS} as a`, 'a.id', 't.account_id')
    .where('a.customer_id', customerId)
    .orderBy([
      { column: 't.booked_at', order: 'desc' },
      { column: 't.id', order: 'desc' },
    ])
    .limit(options.limit)
    .select<TransactionRow[]>(
      't.id',
      't.account_id',
      't.booked_at',
      't.description',
      't.category',
      't.amount_minor',
      't.balance_after_minor',
      'a.currency',
    );
  if (options.accountId) query.andWhere('t.account_id', options.accountId);
  const rows: TransactionRow[] = await query;
  return rows.map(toTransaction);
}

/**
 * Books a payment out of one of the customer's accounts: the balance, the transaction and the
 * payment record change together or not at all. The account row is locked first, so two
 * payments at once cannot both spend the same money.
 */
export async function makePayment(knex: Knex, order: PaymentOrder): Promise<PaymentOutcome> {
  if (!isUuid(order.accountId)) return { ok: false, reason: 'account_not_found' };
  const texts = [order.clientId, order.payeeName, order.payeeIban, order.reference ?? ''];
  if (!texts.every((text) => isStorableText(text, MAX_IDENTIFIER_LENGTH)))
    return { ok: false, reason: 'unstorable_text' };
  return knex.transaction(async (trx) => {
    const row: AccountRow | undefined = await trx(ACCOUNTS)
      .where({ id: order.accountId, customer_id: order.customerId })
      .forUpdate()
      .first(ACCOUNT_COLUMNS);
    if (!row) return { ok: false, reason: 'account_not_found' };
    const account = toAccount(row);
    if (account.currency !== order.currency) return { ok: false, reason: 'currency_mismatch' };
    if (account.balanceMinor < order.amountMinor) return { ok: false, reason: 'insufficient_funds' };

    const balanceAfterMinor = account.balanceMinor - order.amountMinor;
    await trx(ACCOUNTS).where({ id: account.id }).update({ balance_minor: balanceAfterMinor });
    const [transaction] = await trx(TRANSACTIONS)
      .insert({
        account_id: account.id,
        booked_at: trx.fn.now(),
        description: order.reference ? `${order.payeeName} · ${order.reference}` : order.payeeName,
        category: 'payments',
        amount_minor: -order.amountMinor,
        balance_after_minor: balanceAfterMinor,
      })
      .returning<{ id: string }[]>('id');
    const [payment] = await trx(PAYMENTS)
      .insert({
        account_id: account.id,
        transaction_id: transaction?.id,
        client_id: order.clientId,
        amount_minor: order.amountMinor,
        currency: order.currency,
        payee_name: order.payeeName,
        payee_iban: order.payeeIban,
        reference: order.reference ?? null,
      })
      .returning<{ id: string; created_at: Date }[]>(['id', 'created_at']);
    if (!transaction || !payment) throw new Error('the payment was not recorded');
    return {
      ok: true,
      payment: {
        id: payment.id,
        accountId: account.id,
        transactionId: transaction.id,
        amountMinor: order.amountMinor,
        currency: order.currency,
        payeeName: order.payeeName,
        payeeIban: order.payeeIban,
        reference: order.reference,
        balanceAfterMinor,
        createdAt: payment.created_at,
      },
    };
  });
}

/**
 * Opens accounts with their history for a customer, each in one transaction. An account whose
 * IBAN already exists is left as it is (with its history), so running this twice adds nothing,
 * even when two processes run it at once. Returns how many accounts were opened.
 */
export async function openAccounts(knex: Knex, customerId: string, accounts: NewAccount[]): Promise<number> {
  let opened = 0;
  for (const account of accounts) {
    await knex.transaction(async (trx) => {
      const history = [...account.transactions].sort((a, b) => a.bookedAt.getTime() - b.bookedAt.getTime());
      let balance = account.openingBalanceMinor;
      const rows = history.map((transaction) => {
        balance += transaction.amountMinor;
        return {
          booked_at: transaction.bookedAt,
          description: transaction.description,
          category: transaction.category,
          amount_minor: transaction.amountMinor,
          balance_after_minor: balance,
        };
      });
      const [created] = await trx(ACCOUNTS)
        .insert({
          customer_id: customerId,
          name: account.name,
          kind: account.kind,
          iban: account.iban,
          currency: account.currency,
          balance_minor: balance,
        })
        .onConflict('iban')
        .ignore()
        .returning<{ id: string }[]>('id');
      if (!created) return;
      if (rows.length > 0) {
        await trx(TRANSACTIONS).insert(rows.map((row) => ({ ...row, account_id: created.id })));
      }
      opened += 1;
    });
  }
  return opened;
}
