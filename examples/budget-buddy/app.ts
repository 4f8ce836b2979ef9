import type Koa from 'koa';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import { exampleWeb } from '../common/web.ts';
import { bankApi, BankUnavailableError } from './bank-api.ts';
import { bankAuthorization, ConnectionEndedError, NotAllowedError } from './bank-connection.ts';
import type { BudgetBuddyConfig } from './config.ts';
import { SessionStore, type Notice, type Session } from './sessions.ts';
import { categoryLabel, formatDay, formatMoney, summarise } from './summary.ts';

/**
 * Budget Buddy's pages: a welcome page with "Connect your bank", the bank's callback, the
 * dashboard of the customer's spending, and "Disconnect". Every form is a POST carrying the
 * session's CSRF token; headers, cookie and CSRF checks are ../common/web.ts's.
 */

const SESSION_COOKIE = 'bb_session';
const RECENT_TRANSACTIONS = 30;

const NOTICES: Record<Notice, string> = {
  disconnected:
    'You disconnected your bank. Budget Buddy no longer has access and has forgotten your tokens.',
  connection_ended:
    'Your bank connection has ended: access was revoked at the bank or has expired. Connect again to see your spending.',
  not_allowed: "You didn't allow Budget Buddy to read your bank data, so nothing was connected.",
  sign_in_failed: "Connecting to your bank didn't work. Please try again.",
};

export interface BudgetBuddy {
  app: Koa;
  /** The in-memory sessions (and so the tokens) Budget Buddy holds. */
  sessions: SessionStore;
}

export function createBudgetBuddy(config: BudgetBuddyConfig, log: Logger): BudgetBuddy {
  const sessions = new SessionStore();
  const authorization = bankAuthorization(config);
  const bank = bankApi(config, authorization);
  const { app, router, forms, currentSession, existingSession, useSession, checkedSession, page, problem } =
    exampleWeb({
      name: 'Budget Buddy',
      footer:
        "Budget Buddy is an example app. It reads your accounts through your bank's consent screen and never sees your bank password.",
      cookieName: SESSION_COOKIE,
      baseUrl: config.baseUrl,
      issuer: config.issuer,
      folder: import.meta.dirname,
      slug: 'budget-buddy',
      views: ['welcome', 'dashboard'],
      helpers: { formatMoney, formatDay, categoryLabel },
      sessions,
      log,
    });

  function takeNotice(session: Session): string | undefined {
    const notice = session.notice && NOTICES[session.notice];
    delete session.notice;
    return notice;
  }

  async function showDashboard(ctx: Context, session: Session) {
    try {
      const [accounts, transactions] = await Promise.all([
        bank.accounts(session),
        bank.transactions(session, 200),
      ]);
      page(ctx, 'dashboard', {
        csrf: session.csrfToken,
        name: session.connection?.name,
        accounts,
        summary: summarise(accounts, transactions),
        transactions: transactions.slice(0, RECENT_TRANSACTIONS),
        accountNames: Object.fromEntries(accounts.map((account) => [account.id, account.name])),
        notice: takeNotice(session),
      });
    } catch (error) {
      if (error instanceof ConnectionEndedError) {
        session.notice = 'connection_ended';
        return page(ctx, 'welcome', { csrf: session.csrfToken, notice: takeNotice(session) });
      }
      if (!(error instanceof BankUnavailableError)) throw error;
      log.warn({ reason: error.message }, 'the bank could not be reached');
      problem(
        ctx,
        503,
        'Your bank is not answering',
        "We couldn't reach your bank just now. Try again in a minute.",
      );
    }
  }

  router.get('/', async (ctx) => {
    const session = currentSession(ctx);
    if (session.connection) return showDashboard(ctx, session);
    page(ctx, 'welcome', { csrf: session.csrfToken, notice: takeNotice(session) });
  });

  router.post('/connect', forms, async (ctx) => {
    const session = checkedSession(ctx);
    if (!session) return;
    try {
      const { url, pending } = await authorization.start();
      session.pending = pending;
      ctx.status = 303;
      ctx.redirect(url.href);
    } catch (error) {
      log.warn({ reason: (error as Error).message }, 'the bank could not be reached');
      problem(
        ctx,
        503,
        'Your bank is not answering',
        "We couldn't reach your bank just now. Try again in a minute.",
      );
    }
  });

  router.get('/callback', async (ctx) => {
    const session = existingSession(ctx);
    const pending = session?.pending;
    if (!session || !pending) {
      return problem(
        ctx,
        400,
        'This link has expired',
        'Start again from Budget Buddy to connect your bank.',
      );
    }
    // A callback is good for one try, whatever its outcome.
    delete session.pending;
    try {
      // Built from our own base URL, never from the request's Host header or path.
      const callbackUrl = new URL(`${config.baseUrl}/callback`);
      callbackUrl.search = ctx.querystring;
      const connection = await authorization.finish(callbackUrl, pending);
      const connected = useSession(ctx, sessions.renew(session));
      connected.connection = connection;
    } catch (error) {
      if (!(error instanceof NotAllowedError)) {
        log.warn({ reason: (error as Error).message }, 'connecting to the bank failed');
        return problem(ctx, 400, 'Connecting to your bank failed', NOTICES.sign_in_failed);
      }
      session.notice = 'not_allowed';
    }
    ctx.status = 303;
    ctx.redirect('/');
  });

  router.post('/disconnect', forms, async (ctx) => {
    const session = checkedSession(ctx);
    if (!session) return;
    if (session.connection) {
      try {
        await authorization.disconnect(session.connection);
      } catch (error) {
        // The tokens stay until the bank confirms, so that the customer can try again.
        log.warn({ reason: (error as Error).message }, 'revocation failed');
        return problem(
          ctx,
          503,
          'Your bank is not answering',
          "We couldn't disconnect just now. Try again in a minute.",
        );
      }
      delete session.connection;
      session.notice = 'disconnected';
    }
    ctx.status = 303;
    ctx.redirect('/');
  });

  return { app, sessions };
}
