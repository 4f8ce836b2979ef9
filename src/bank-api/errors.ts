import type { Middleware } from 'koa';
import type { Logger } from '../service/kit.ts';
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../db/unavailable.ts';

/**
 * Every answer of the bank API is JSON, errors included: `{ error, error_description }` with the
 * OAuth-style code a developer can act on. An unreachable database is a 503 temporarily_unavailable
 * with Retry-After, which a caller may simply repeat. Anything unexpected is a 500 whose detail only the
 * log sees; a stack trace never reaches the caller.
 */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** A header named with a list is sent once for each value (several WWW-Authenticate challenges). */
  readonly headers: Record<string, string | string[]>;
  /** Extra members of the JSON body, such as the scope an insufficient_scope error needs. */
  readonly extra: Record<string, string>;

  constructor(
    status: number,
    code: string,
    description: string,
    options: { headers?: Record<string, string | string[]>; extra?: Record<string, string> } = {},
  ) {
    super(description);
    this.status = status;
    this.code = code;
    this.headers = options.headers ?? {};
    this.extra = options.extra ?? {};
  }
}

/** For errors thrown by Koa's own helpers (the body parser): a plain word for each status. */
const DESCRIPTIONS: Record<number, string> = {
  400: 'The request body is not valid JSON.',
  404: 'There is nothing at this address.',
  405: 'This address does not accept that method.',
  413: 'The request body is too large.',
  415: 'The request body must be JSON (Content-Type: application/json).',
};

function respond(ctx: Parameters<Middleware>[0], error: ApiError): void {
  ctx.status = error.status;
  ctx.set(error.headers);
  ctx.body = { error: error.code, error_description: error.message, ...error.extra };
}

export function jsonErrors(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.body == null && (ctx.status === 404 || ctx.status === 405)) {
        const code = ctx.status === 404 ? 'not_found' : 'method_not_allowed';
        respond(ctx, new ApiError(ctx.status, code, DESCRIPTIONS[ctx.status] ?? ''));
      }
    } catch (caught) {
      if (caught instanceof ApiError) return respond(ctx, caught);
      const { status } = caught as { status?: number };
      if (status && status >= 400 && status < 500) {
        const description = DESCRIPTIONS[status] ?? 'The request is malformed.';
        return respond(ctx, new ApiError(status, 'invalid_request', description));
      }
      if (isDatabaseUnavailable(caught)) {
        log.warn({ err: caught, path: ctx.path }, 'database unavailable');
        return respond(
          ctx,
          new ApiError(
            503,
            'temporarily_unavailable',
            'The bank is briefly unavailable. Try again shortly.',
            {
              headers: { 'Retry-After': String(DATABASE_RETRY_AFTER_SECONDS) },
            },
          ),
        );
      }
      log.error({ err: caught, path: ctx.path }, 'request failed');
      respond(ctx, new ApiError(500, 'server_error', 'Something went wrong at the bank. Try again later.'));
    }
  };
}
