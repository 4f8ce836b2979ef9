import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import type { Knex } from '../db/knex.ts';
import { requestLog, type Logger, type ServiceHealth } from '../service/kit.ts';
import { createGuard, type BankApiState } from './auth.ts';
import { ApiError, jsonErrors } from './errors.ts';
import type { Introspect } from './introspection.ts';
import { consentAccountsRouter, type AccountLookupVerifier } from './consent-accounts.ts';
import { listTransactions, type Account, type Transaction } from './ledger.ts';
import { visibleAccount, visibleAccounts } from './account-visibility.ts';
import { formatAmount } from './money.ts';
import { paymentRoutes } from './payment-routes.ts';

/**
 * The bank's API (the resource server): what an app may see and do with a customer's accounts,
 * each route behind the scope the customer granted, and payments behind the one payment the
 * customer approved (payment-routes.ts). An app only ever sees the accounts the customer chose to
 * share with it (account-visibility.ts); another customer's account id, or one not shared,
 * answers 404, exactly like one that does not exist.
 */

export interface BankApiDependencies {
  knex: Knex;
  introspect: Introspect;
  /** Checks Passbook's account lookup tokens (GET /consent/accounts). */
  verifyAccountLookup: AccountLookupVerifier;
  log: Logger;
  /** Counts every request (src/metrics/http.ts). */
  countRequests?: Koa.Middleware;
  /** /livez and /readyz (src/bank-api/start.ts names what readiness checks). */
  health: ServiceHealth;
  /** TRUST_PROXY: the proxy in front is trusted with X-Forwarded-* and X-Request-Id. */
  trustProxy?: boolean;
  /**
   * BANK_API_URL: the API's own base URL as apps call it, which DPoP proofs name
   * (src/bank-api/dpop.ts) and payment tokens name as their audience.
   */
  publicUrl: string;
}

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

const NO_SUCH_ACCOUNT = new ApiError(404, 'not_found', 'No such account.');

function accountJson(account: Account) {
  return {
    id: account.id,
    name: account.name,
    type: account.kind,
    iban: account.iban,
    currency: account.currency,
    balance: formatAmount(account.balanceMinor),
  };
}

function transactionJson(transaction: Transaction) {
  return {
    id: transaction.id,
    account_id: transaction.accountId,
    booked_at: transaction.bookedAt.toISOString(),
    description: transaction.description,
    category: transaction.category,
    amount: formatAmount(transaction.amountMinor),
    currency: transaction.currency,
    balance_after: formatAmount(transaction.balanceAfterMinor),
  };
}

function readLimit(ctx: Context): number {
  const raw = ctx.query.limit;
  if (raw === undefined) return DEFAULT_LIMIT;
  if (typeof raw !== 'string' || !/^\d{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LIMIT) {
    throw new ApiError(400, 'invalid_request', `limit must be a whole number from 1 to ${MAX_LIMIT}`);
  }
  return Number(raw);
}

function bankRoutes({ knex, introspect, log, publicUrl }: BankApiDependencies): Router<BankApiState> {
  const router = new Router<BankApiState>();
  const guard = createGuard(introspect, log, { knex, publicUrl });

  router.get('/accounts', guard.requireScope('accounts:read'), async (ctx) => {
    const accounts = await visibleAccounts(knex, ctx.state.token);
    ctx.body = { accounts: accounts.map(accountJson) };
  });

  router.get('/accounts/:id/transactions', guard.requireScope('transactions:read'), async (ctx) => {
    const { customerId } = ctx.state.token;
    const limit = readLimit(ctx);
    const account = await visibleAccount(knex, ctx.state.token, ctx.params.id ?? '');
    if (!account) throw NO_SUCH_ACCOUNT;
    const transactions = await listTransactions(knex, customerId, { accountId: account.id, limit });
    ctx.body = { transactions: transactions.map(transactionJson) };
  });

  router.get('/transactions', guard.requireScope('transactions:read'), async (ctx) => {
    const limit = readLimit(ctx);
    const accounts = await visibleAccounts(knex, ctx.state.token);
    const transactions = accounts.length
      ? await listTransactions(knex, ctx.state.token.customerId, {
          accountIds: accounts.map((account) => account.id),
          limit,
        })
      : [];
    ctx.body = { transactions: transactions.map(transactionJson) };
  });

  paymentRoutes(router, { knex, log, guard, publicUrl });

  return router;
}

/** Personal data: never kept by a browser or a shared cache, never framed, never sniffed. */
function apiHeaders(): Koa.Middleware {
  return async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    ctx.set('Referrer-Policy', 'no-referrer');
    await next();
  };
}

export function createBankApi(dependencies: BankApiDependencies): Koa {
  const app = new Koa({ proxy: dependencies.trustProxy ?? false });
  app.silent = true;
  app.use(requestLog(dependencies.log));
  if (dependencies.countRequests) app.use(dependencies.countRequests);
  app.use(apiHeaders());
  app.use(jsonErrors(dependencies.log));
  const bank = bankRoutes(dependencies);
  const consent = consentAccountsRouter({
    knex: dependencies.knex,
    verify: dependencies.verifyAccountLookup,
  });
  app.use(dependencies.health.router.routes());
  app.use(consent.routes());
  app.use(consent.allowedMethods());
  app.use(bank.routes());
  app.use(bank.allowedMethods());
  return app;
}
