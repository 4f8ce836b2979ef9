import { readFileSync } from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import Koa, { type Context } from 'koa';
import type { Logger } from 'pino';
import pug from 'pug';
import { bankApi, BankUnavailableError } from './bank-api.ts';
import { bankAuthorization, ConnectionEndedError, NotAllowedError } from './bank-connection.ts';
import type { BudgetBuddyConfig } from './config.ts';
import { sameSecret, SessionStore, type Notice, type Session } from './sessions.ts';
import { categoryLabel, formatDay, formatMoney, summarise } from './summary.ts';

/**
 * Budget Buddy's pages: a welcome page with "Connect your bank", the bank's callback, the
 * dashboard of the customer's spending, and "Disconnect". Every form is a POST carrying the
 * session's CSRF token; no page has inline script or style (see the CSP below).
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

const VIEWS = path.join(import.meta.dirname, 'views');
const render = Object.fromEntries(
  ['welcome', 'dashboard', 'problem'].map((name) => [name, pug.compileFile(path.join(VIEWS, `${name}.pug`))]),
) as Record<'welcome' | 'dashboard' | 'problem', pug.compileTemplate>;

const ASSETS: Record<string, { type: string; body: Buffer }> = {
  'budget-buddy.css': {
    type: 'text/css; charset=utf-8',
    body: readFileSync(path.join(import.meta.dirname, 'public', 'budget-buddy.css')),
  },
  'logo.svg': {
    type: 'image/svg+xml',
    body: readFileSync(path.join(import.meta.dirname, 'public', 'logo.svg')),
  },
};

function securityHeaders(issuer: string): Koa.Middleware {
  // form-action must allow the bank: "Connect your bank" is a form whose answer redirects there.
  const csp = [
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self'",
    `form-action 'self' ${new URL(issuer).origin}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
  return async (ctx, next) => {
    ctx.set('Content-Security-Policy', csp);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    await next();
  };
}

export interface BudgetBuddy {
  app: Koa;
  /** The in-memory sessions (and so the tokens) Budget Buddy holds. */
  sessions: SessionStore;
}

export function createBudgetBuddy(config: BudgetBuddyConfig, log: Logger): BudgetBuddy {
  const sessions = new SessionStore();
  const authorization = bankAuthorization(config);
  const bank = bankApi(config, authorization);
  const secureCookies = config.baseUrl.startsWith('https:');

  function useSession(ctx: Context, session: Session): Session {
    ctx.cookies.set(SESSION_COOKIE, session.id, {
      httpOnly: true,
      sameSite: 'lax',
      secure: secureCookies,
      signed: false,
      overwrite: true,
    });
    return session;
  }

  function currentSession(ctx: Context): Session {
    return sessions.find(ctx.cookies.get(SESSION_COOKIE)) ?? useSession(ctx, sessions.create());
  }

  function page(ctx: Context, view: keyof typeof render, locals: Record<string, unknown>, status = 200) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = render[view]({ formatMoney, formatDay, categoryLabel, ...locals });
  }

  function problem(ctx: Context, status: number, title: string, message: string) {
    page(ctx, 'problem', { title, message }, status);
  }

  function takeNotice(session: Session): string | undefined {
    const notice = session.notice && NOTICES[session.notice];
    delete session.notice;
    return notice;
  }

  /** A state-changing form must carry this session's CSRF token. */
  function checkedSession(ctx: Context): Session | undefined {
    const session = sessions.find(ctx.cookies.get(SESSION_COOKIE));
    const presented = (ctx.request.body as Record<string, unknown> | undefined)?.csrf;
    if (session && sameSecret(session.csrfToken, presented)) return session;
    problem(ctx, 403, 'This form has expired', 'Please go back, reload the page and try again.');
    return undefined;
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

  const router = new Router();
  const forms = bodyParser({ enableTypes: ['form'], formLimit: '4kb' });

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
    const session = sessions.find(ctx.cookies.get(SESSION_COOKIE));
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

  router.get('/assets/:file', (ctx) => {
    const asset = ASSETS[ctx.params.file ?? ''];
    if (!asset) return;
    ctx.type = asset.type;
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = asset.body;
  });

  const app = new Koa({ proxy: secureCookies });
  app.silent = true;
  app.use(securityHeaders(config.issuer));
  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null)
        problem(ctx, 404, 'Page not found', 'There is nothing here.');
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status && status >= 400 && status < 500)
        return problem(ctx, status, 'That did not work', 'Please go back and try again.');
      log.error({ err: error, path: ctx.path }, 'request failed');
      problem(ctx, 500, 'Something went wrong', 'Please try again in a moment.');
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return { app, sessions };
}
