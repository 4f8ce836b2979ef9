import { readFileSync } from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import Koa, { type Context } from 'koa';
import type { Logger } from 'pino';
import pug from 'pug';
import { sameSecret, type SessionStore, type StoredSession } from './sessions.ts';

/**
 * The web side every example app shares: security headers (a CSP without inline script or
 * style), the session cookie, CSRF-checked forms, pages rendered from pug with the shared layout,
 * the problem page, static assets, and the one place where an error becomes a page.
 */

export interface ExampleSite<Data extends object> {
  /** Shown in the layout and the title, e.g. "Budget Buddy". */
  name: string;
  /** The footer's one sentence about the app. */
  footer: string;
  cookieName: string;
  baseUrl: string;
  /** The bank's issuer: forms whose answer redirects there must be allowed to. */
  issuer: string;
  /** The app's own folder, holding views/ and public/ (its `<slug>.css` and logo.svg). */
  folder: string;
  slug: string;
  views: readonly string[];
  /** Values every page may use (formatters, say). */
  helpers?: Record<string, unknown>;
  sessions: SessionStore<Data>;
  log: Logger;
}

export interface ExampleWeb<Data extends object> {
  app: Koa;
  router: Router;
  /** Parses a small urlencoded form body. */
  forms: Koa.Middleware;
  /** This browser's session, created (and its cookie set) if it has none. */
  currentSession: (ctx: Context) => StoredSession<Data>;
  /** This browser's session if it has one; never creates one. */
  existingSession: (ctx: Context) => StoredSession<Data> | undefined;
  /** Points this browser's cookie at the session (after a renewal, say). */
  useSession: (ctx: Context, session: StoredSession<Data>) => StoredSession<Data>;
  /** A state-changing form must carry this session's CSRF token; otherwise a 403 page is sent. */
  checkedSession: (ctx: Context) => StoredSession<Data> | undefined;
  page: (ctx: Context, view: string, locals: Record<string, unknown>, status?: number) => void;
  problem: (ctx: Context, status: number, title: string, message: string) => void;
}

const COMMON = import.meta.dirname;

function securityHeaders(issuer: string): Koa.Middleware {
  // form-action must allow the bank: a form whose answer redirects there is posted to the app.
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

type Asset = { type: string; body: Buffer };

function assets(site: Pick<ExampleSite<object>, 'folder' | 'slug'>): Record<string, Asset> {
  const css = (file: string): Asset => ({ type: 'text/css; charset=utf-8', body: readFileSync(file) });
  return {
    'example.css': css(path.join(COMMON, 'public', 'example.css')),
    [`${site.slug}.css`]: css(path.join(site.folder, 'public', `${site.slug}.css`)),
    'logo.svg': { type: 'image/svg+xml', body: readFileSync(path.join(site.folder, 'public', 'logo.svg')) },
  };
}

function compileViews(folder: string, names: readonly string[]): Map<string, pug.compileTemplate> {
  const views = new Map<string, pug.compileTemplate>();
  views.set('problem', pug.compileFile(path.join(COMMON, 'views', 'problem.pug')));
  for (const name of names) views.set(name, pug.compileFile(path.join(folder, 'views', `${name}.pug`)));
  return views;
}

export function exampleWeb<Data extends object>(site: ExampleSite<Data>): ExampleWeb<Data> {
  const views = compileViews(site.folder, site.views);
  const files = assets(site);
  const secureCookies = site.baseUrl.startsWith('https:');
  const layout = { name: site.name, footer: site.footer, stylesheet: `/assets/${site.slug}.css` };

  function useSession(ctx: Context, session: StoredSession<Data>) {
    ctx.cookies.set(site.cookieName, session.id, {
      httpOnly: true,
      sameSite: 'lax',
      secure: secureCookies,
      signed: false,
      overwrite: true,
    });
    return session;
  }

  function existingSession(ctx: Context) {
    return site.sessions.find(ctx.cookies.get(site.cookieName));
  }

  function page(ctx: Context, view: string, locals: Record<string, unknown>, status = 200) {
    const render = views.get(view);
    if (!render) throw new Error(`no view ${view}`);
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = render({ ...site.helpers, layout, ...locals });
  }

  function problem(ctx: Context, status: number, title: string, message: string) {
    page(ctx, 'problem', { title, message }, status);
  }

  function checkedSession(ctx: Context) {
    const session = existingSession(ctx);
    const presented = (ctx.request.body as Record<string, unknown> | undefined)?.csrf;
    if (session && sameSecret(session.csrfToken, presented)) return session;
    problem(ctx, 403, 'This form has expired', 'Please go back, reload the page and try again.');
    return undefined;
  }

  const router = new Router();
  router.get('/assets/:file', (ctx) => {
    const asset = files[ctx.params.file ?? ''];
    if (!asset) return;
    ctx.type = asset.type;
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = asset.body;
  });

  const app = new Koa({ proxy: secureCookies });
  app.silent = true;
  app.use(securityHeaders(site.issuer));
  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null)
        problem(ctx, 404, 'Page not found', 'There is nothing here.');
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status && status >= 400 && status < 500)
        return problem(ctx, status, 'That did not work', 'Please go back and try again.');
      site.log.error({ err: error, path: ctx.path }, 'request failed');
      problem(ctx, 500, 'Something went wrong', 'Please try again in a moment.');
    }
  });
  // The router matches at request time, so routes the app adds after this still count.
  app.use(router.routes());
  app.use(router.allowedMethods());

  return {
    app,
    router,
    forms: bodyParser({ enableTypes: ['form'], formLimit: '4kb' }),
    currentSession: (ctx) => existingSession(ctx) ?? useSession(ctx, site.sessions.create()),
    existingSession,
    useSession,
    checkedSession,
    page,
    problem,
  };
}
