import type { Context, Middleware } from 'koa';
import { renderErrorPage } from './views.ts';

/**
 * An early, cheap refusal of a request whose path or query carries a NUL (%00): no endpoint
 * accepts one and PostgreSQL can store none. It is only the first line: every module that builds
 * SQL from request data checks values itself (src/db/storable.ts), bodies included, since
 * oidc-provider reads its endpoints' bodies itself, from the stream, and this does not pre-parse
 * them for it.
 */

/** Endpoints whose callers are programs: an OAuth error as JSON (RFC 6749 §5.2, RFC 7009, RFC 9126). */
const JSON_ENDPOINTS = /^\/(token|token\/introspection|token\/revocation|request|me|jwks|\.well-known\/.+)$/;

/**
 * At the authorization endpoint an error goes back to the app when its client_id and
 * redirect_uri are good (RFC 6749 §4.1.2.1), which the provider does; only these two decide
 * whether the error page must answer instead.
 */
const AUTHORIZATION_TARGET = ['client_id', 'redirect_uri'];

function hasNul(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  return (Array.isArray(value) ? value : [value]).some((text) => text.includes('\u0000'));
}

function nulInQuery(ctx: Context): boolean {
  const query = ctx.query;
  if (ctx.path === '/auth') return AUTHORIZATION_TARGET.some((name) => hasNul(query[name]));
  return Object.entries(query).some(([name, value]) => name.includes('\u0000') || hasNul(value));
}

export function refuseNulBytes(): Middleware {
  return async (ctx, next) => {
    if (!/%00/i.test(ctx.path) && !nulInQuery(ctx)) {
      await next();
      return;
    }
    if (JSON_ENDPOINTS.test(ctx.path)) {
      ctx.status = 400;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error: 'invalid_request', error_description: 'the request contains a NUL character' };
      return;
    }
    renderErrorPage(ctx, 400, 'invalid_request');
  };
}
