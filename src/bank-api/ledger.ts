import type { Knex } from '../db/knex.ts';
import { MAX_IDENTIFIER_LENGTH, isStorableText } from '../db/storable.ts';
import { differences, type PaymentFields } from './payment-request.ts';

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
  /** The payment token that pays (its SHA-256, hex): one payment per token. */
  tokenSha256: string;
  /** The app's Idempotency-Key: the same token, key and payment again get the same payment back. */
  idempotencyKey: string;
  fields: PaymentFields;
}

export interface Payment {
  id: string;
  accountId: string;
  clientId: string;
  transactionId: string;
  fields: PaymentFields;
  createdAt: Date;
}

export type PaymentOutcome =
  /** `replayed`: the token had already booked this very payment, under the same key. */
  | { ok: true; payment: Payment; replayed: boolean }
  | {
      ok: false;
      reason:
        'account_not_found' | 'currency_mismatch' | 'insufficient_funds' | 'unstorable_text' | 'token_used';
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
function isUuid(value: string): boolean {
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

/** The customer's transactions, newest first, from one account, from some, or from all of them. */
export async function listTransactions(
  knex: Knex,
  customerId: string,
  options: { accountId?: string; accountIds?: readonly string[]; limit: number },
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
  if (options.accountIds) query.whereIn('t.account_id', [...options.accountIds]);
  const rows: TransactionRow[] = await query;
  return rows.map(toTransaction);
}

interface PaymentRow {
  id: string;
  account_id: string;
  client_id: string;
  transaction_id: string;
  amount_minor: string;
  currency: string;
  payee_name: string;
  payee_iban: string;
  reference: string | null;
  debtor_iban: string;
  idempotency_key: string | null;
  created_at: Date;
}

function toPayment(row: PaymentRow): Payment {
  return {
    id: row.id,
    accountId: row.account_id,
    clientId: row.client_id,
    transactionId: row.transaction_id,
    fields: {
      amountMinor: Number(row.amount_minor),
      currency: row.currency,
      creditorName: row.payee_name,
      creditorIban: row.payee_iban,
      remittance: row.reference ?? undefined,
      debtorIban: row.debtor_iban,
    },
    createdAt: row.created_at,
  };
}

/** Payments with their debtor account, for one customer only. */
function customersPayments(knex: Knex, customerId: string) {
  return knex(`${PAYMENTS} as p`)
    .join(`${ACCOUNTS} as a`, 'a.id', 'p.account_id')
    .where('a.customer_id', customerId)
    .select<PaymentRow[]>(
      'p.id',
      'p.account_id',
      'p.client_id',
      'p.transaction_id',
      'p.amount_minor',
      'p.currency',
      'p.payee_name',
      'p.payee_iban',
      'p.reference',
      'a.iban as debtor_iban',
      'p.idempotency_key',
      'p.created_at',
    );
}

/**
 * What the token already paid, if anything: the same payment under the same key is a retry and
 * gets that payment back; anything else on a used token is refused.
 */
async function earlierOutcome(knex: Knex, order: PaymentOrder): Promise<PaymentOutcome | undefined> {
  const [row] = await customersPayments(knex, order.customerId)
    .where('p.token_sha256', Buffer.from(order.tokenSha256, 'hex'))
    .limit(1);
  if (!row) return undefined;
  const payment = toPayment(row);
  const sameRequest =
    row.idempotency_key === order.idempotencyKey &&
    payment.clientId === order.clientId &&
    differences(payment.fields, order.fields).length === 0;
  return sameRequest ? { ok: true, payment, replayed: true } : { ok: false, reason: 'token_used' };
}

function isStorableOrder(order: PaymentOrder): boolean {
  const { fields } = order;
  const texts = [
    order.clientId,
    order.idempotencyKey,
    fields.creditorName,
    fields.creditorIban,
    fields.remittance ?? '',
  ];
  return texts.every((text) => isStorableText(text, MAX_IDENTIFIER_LENGTH));
}

async function bookWithin(trx: Knex.Transaction, order: PaymentOrder): Promise<PaymentOutcome> {
  const { fields } = order;
  // The account row is locked first: two payments from it, or two requests with one token, queue here.
  const row: AccountRow | undefined = await trx(ACCOUNTS)
    .where({ iban: fields.debtorIban, customer_id: order.customerId })
    .forUpdate()
    .first(ACCOUNT_COLUMNS);
  if (!row) return { ok: false, reason: 'account_not_found' };
  const earlier = await earlierOutcome(trx, order);
  if (earlier) return earlier;
  const account = toAccount(row);
  if (account.currency !== fields.currency) return { ok: false, reason: 'currency_mismatch' };
  if (account.balanceMinor < fields.amountMinor) return { ok: false, reason: 'insufficient_funds' };

  const balanceAfterMinor = account.balanceMinor - fields.amountMinor;
  await trx(ACCOUNTS).where({ id: account.id }).update({ balance_minor: balanceAfterMinor });
  const [transaction] = await trx(TRANSACTIONS)
    .insert({
      account_id: account.id,
      booked_at: trx.fn.now(),
      description: fields.remittance ? `${fields.creditorName} · ${fields.remittance}` : fields.creditorName,
      category: 'payments',
      amount_minor: -fields.amountMinor,
      balance_after_minor: balanceAfterMinor,
    })
    .returning<{ id: string }[]>('id');
  const [payment] = await trx(PAYMENTS)
    .insert({
      account_id: account.id,
      transaction_id: transaction?.id,
      client_id: order.clientId,
      amount_minor: fields.amountMinor,
      currency: fields.currency,
      payee_name: fields.creditorName,
      payee_iban: fields.creditorIban,
      reference: fields.remittance ?? null,
      token_sha256: Buffer.from(order.tokenSha256, 'hex'),
      idempotency_key: order.idempotencyKey,
    })
    .returning<{ id: string; created_at: Date }[]>(['id', 'created_at']);
  if (!transaction || !payment) throw new Error('the payment was not recorded');
  return {
    ok: true,
    replayed: false,
    payment: {
      id: payment.id,
      accountId: account.id,
      clientId: order.clientId,
      transactionId: transaction.id,
      fields,
      createdAt: payment.created_at,
    },
  };
}

function isTokenAlreadyUsed(error: unknown): boolean {
  const { code, constraint } = error as { code?: string; constraint?: string };
  return code === '23505' && constraint === 'payments_token_sha256_key';
}

/**
 * Books the payment a payment token approved, from the customer's account with the debtor IBAN:
 * the balance, the transaction and the payment record change together or not at all, and a token
 * books at most one payment, however many requests carry it at once.
 */
export async function bookPayment(knex: Knex, order: PaymentOrder): Promise<PaymentOutcome> {
  if (!isStorableOrder(order)) return { ok: false, reason: 'unstorable_text' };
  try {
    return await knex.transaction((trx) => bookWithin(trx, order));
  } catch (error) {
    // Only another debtor account could get past the lock; the unique token decides all the same.
    if (!isTokenAlreadyUsed(error)) throw error;
    return (await earlierOutcome(knex, order)) ?? { ok: false, reason: 'token_used' };
  }
}

/** One of the customer's payments, made by `clientId`; with `tokenSha256`, only the one that token made. */
export async function findPayment(
  knex: Knex,
  query: { id: string; customerId: string; clientId: string; tokenSha256?: string },
): Promise<Payment | undefined> {
  if (!isUuid(query.id)) return undefined;
  const select = customersPayments(knex, query.customerId).where({
    'p.id': query.id,
    'p.client_id': query.clientId,
  });
  if (query.tokenSha256 !== undefined)
    select.andWhere('p.token_sha256', Buffer.from(query.tokenSha256, 'hex'));
  const [row] = await select.limit(1);
  return row && toPayment(row);
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
