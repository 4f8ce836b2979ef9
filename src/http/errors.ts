import type { Middleware } from 'koa';
import type { Logger } from '../log.ts';
import { renderErrorPage } from './views.ts';
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../db/unavailable.ts';

/** An error meant for the customer: its status and OAuth-style code reach the error page. */
export class PageError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message = code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function codeForStatus(status: number): string {
  if (status === 404) return 'not_found';
  if (status === 413) return 'request_too_large';
  if (status >= 500) return 'server_error';
  return 'invalid_request';
}

/**
 * Turns anything thrown by our own routes into the bank's error page: a 4xx keeps its status
 * and says what went wrong in plain words, an unreachable database is a 503 that asks the
 * customer to try again shortly, anything else is a 500 whose detail only the log sees.
 */
export function errorPages(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      // A response handed to oidc-provider (respond = false) is already on its way.
      if (ctx.respond !== false && ctx.status === 404 && ctx.body == null)
        renderErrorPage(ctx, 404, 'not_found');
    } catch (caught) {
      const error = caught as Error & { status?: number; expose?: boolean };
      if (error instanceof PageError) {
        renderErrorPage(ctx, error.status, error.code);
        return;
      }
      if (isDatabaseUnavailable(caught)) {
        log.warn({ err: error, path: ctx.path }, 'database unavailable');
        ctx.set('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
        renderErrorPage(ctx, 503, 'temporarily_unavailable');
        return;
      }
      const status = error.status && error.status >= 400 && error.status < 500 ? error.status : 500;
      if (status === 500) log.error({ err: error, path: ctx.path }, 'request failed');
      renderErrorPage(ctx, status, codeForStatus(status));
    }
  };
}
