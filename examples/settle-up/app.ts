import type Koa from 'koa';
import type { Context } from 'koa';
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import { exampleWeb } from '../common/web.ts';
import {
  BankUnavailableError,
  PaymentDeclinedError,
  UnexpectedApprovalError,
  type BankConnection,
  type PendingPayment,
} from './bank-connection.ts';
import type { SettleUpConfig } from './config.ts';
import { DINNER_WITH_JO, formatIban, formatMoney, type Debt } from './debt.ts';
import { SessionStore, type Session } from './sessions.ts';

/**
 * Settle Up's pages: the home page with what you owe and "Pay Jo back", the bank's callback
 * (which books the approved payment) and the receipt. Every form is a POST carrying the
 * session's CSRF token; headers, cookie and CSRF checks are ../common/web.ts's.
 */

const SESSION_COOKIE = 'su_session';

type ErrorType = abstract new (...args: never[]) => Error;

export interface SettleUp {
  app: Koa;
  /** The in-memory sessions Settle Up holds. */
  sessions: SessionStore;
}

/** What the bank said, for the customer: its HTTP status and error code, never a stack trace. */
function bankSaid(error: unknown): string | undefined {
  if (error instanceof oidc.ResponseBodyError) return `${error.status} ${error.error}`;
  if (error instanceof oidc.AuthorizationResponseError) return error.error;
  return undefined;
}

/**
 * Node's fetch says "fetch failed" when nothing answers (openid-client may wrap it as the cause);
 * openid-client has a code for its timeout. Read by name, as an error from another realm would be.
 */
function unreachable(error: unknown): boolean {
  if (error instanceof oidc.ClientError && error.code === 'OAUTH_TIMEOUT') return true;
  const { name, message, cause } = (error ?? {}) as { name?: unknown; message?: unknown; cause?: unknown };
  if (name === 'TypeError' && message === 'fetch failed') return true;
  return cause !== undefined && cause !== error && unreachable(cause);
}

export function createSettleUp(config: SettleUpConfig, bank: BankConnection, log: Logger): SettleUp {
  const sessions = new SessionStore();
  const debt: Debt = DINNER_WITH_JO;
  const owed = `${formatMoney(debt.payment.instructedAmount)} to ${debt.payment.creditorName}`;
  const { app, router, forms, currentSession, existingSession, checkedSession, page, problem } = exampleWeb({
    name: 'Settle Up',
    footer:
      "Settle Up is an example app. You approve each payment on your bank's own page; Settle Up never sees your bank password.",
    cookieName: SESSION_COOKIE,
    baseUrl: config.baseUrl,
    issuer: config.issuer,
    folder: import.meta.dirname,
    slug: 'settle-up',
    views: ['home'],
    helpers: { formatMoney, formatIban },
    sessions,
    log,
  });

  function bankProblem(ctx: Context, error: unknown, title: string) {
    const said = bankSaid(error);
    log.warn({ reason: (error as Error).message, said }, title);
    if (said) return problem(ctx, 502, title, `Your bank answered ${said}. Nothing was paid.`);
    if (unreachable(error)) {
      return problem(
        ctx,
        503,
        'Your bank is not answering',
        "We couldn't reach your bank just now. Try again in a minute.",
      );
    }
    problem(
      ctx,
      400,
      title,
      "Your bank's answer did not check out, so nothing was paid. Start again from Settle Up.",
    );
  }

  /** Exchanges the code, then books the approved payment: the customer's one trip to the bank. */
  async function settle(ctx: Context, session: Session, pending: PendingPayment) {
    // Built from our own base URL, never from the request's Host header or path.
    const callbackUrl = new URL(`${config.baseUrl}/callback`);
    callbackUrl.search = ctx.querystring;
    const approval = await bank.finish(callbackUrl, pending);
    const outcome = await bank.book(approval, pending);
    if ('refused' in outcome) {
      const { status, error } = outcome.refused;
      log.warn({ status, error }, 'the bank did not book the payment');
      return problem(
        ctx,
        502,
        'The payment was not made',
        `Your bank answered ${status} ${error}. Nothing was paid.`,
      );
    }
    session.settlement = outcome.booked;
    log.info({ paymentId: outcome.booked.id, status: outcome.booked.status }, 'payment booked');
    ctx.status = 303;
    ctx.redirect('/');
  }

  /** What the customer is told when the callback goes wrong in a way Settle Up expects. */
  const CALLBACK_PROBLEMS: { type: ErrorType; status: number; title: string; message: string }[] = [
    {
      type: PaymentDeclinedError,
      status: 200,
      title: 'You did not approve the payment',
      message: `Nothing was paid. You still owe ${owed}.`,
    },
    {
      type: UnexpectedApprovalError,
      status: 502,
      title: 'Your bank approved a different payment',
      message: `Settle Up asked to pay ${owed}, so it paid nothing.`,
    },
    {
      type: BankUnavailableError,
      status: 503,
      title: 'Your bank is not answering',
      message:
        'We could not tell whether the payment went through. Check your bank account before you pay again.',
    },
  ];

  function callbackFailed(ctx: Context, error: unknown) {
    const known = CALLBACK_PROBLEMS.find(({ type }) => error instanceof type);
    if (!known) return bankProblem(ctx, error, 'Paying through your bank failed');
    log.info({ reason: (error as Error).message }, known.title);
    problem(ctx, known.status, known.title, known.message);
  }

  router.get('/', (ctx) => {
    const session = currentSession(ctx);
    page(ctx, 'home', {
      csrf: session.csrfToken,
      debt,
      settlement: session.settlement,
    });
  });

  router.post('/pay', forms, async (ctx) => {
    const session = checkedSession(ctx);
    if (!session) return;
    if (session.settlement) {
      ctx.status = 303;
      return ctx.redirect('/');
    }
    try {
      const { url, pending } = await bank.start(debt);
      session.pending = pending;
      ctx.status = 303;
      ctx.redirect(url.href);
    } catch (error) {
      bankProblem(ctx, error, 'Your bank would not start the payment');
    }
  });

  router.get('/callback', async (ctx) => {
    const session = existingSession(ctx);
    const pending = session?.pending;
    if (!session || !pending) {
      return problem(ctx, 400, 'This link has expired', 'Start again from Settle Up to pay Jo back.');
    }
    // A callback is good for one try, whatever its outcome.
    delete session.pending;
    try {
      await settle(ctx, session, pending);
    } catch (error) {
      callbackFailed(ctx, error);
    }
  });

  return { app, sessions };
}
