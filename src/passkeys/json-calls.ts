import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import { isValidCsrfToken } from '../http/csrf.ts';
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../db/unavailable.ts';
import { settleRequestTransaction } from '../db/request-transaction.ts';

/**
 * The JSON endpoints public/passkeys.js calls. Another site cannot call them: a cross-site page
 * can send neither `Content-Type: application/json` nor a custom header without a CORS preflight
 * (which nothing here answers), and the `X-CSRF-Token` header must carry the page's own token,
 * bound like the forms' tokens to the interaction, sign-in form or session. Errors answer JSON,
 * never the HTML error page, and nothing here is stored by a browser or a proxy.
 */

const CSRF_HEADER = 'x-csrf-token';

/** A refusal the script shows: its status, a code, and one sentence for the customer. */
export class CallError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const FORBIDDEN = new CallError(
  403,
  'csrf_failed',
  "This page has expired or is not the bank's. Reload it and try again.",
);

const parseJson = bodyParser({ enableTypes: ['json'], jsonLimit: '64kb', encoding: 'utf-8' });

/**
 * Wraps a JSON endpoint: refuses other content types (415) and a request sent from another
 * origin (403), parses the body, and turns a CallError or a bad body into a JSON answer. A
 * handler that succeeded commits the request's writes here, so that a commit that fails is
 * answered in JSON too (503 when the database could not take it).
 */
export function jsonCall(
  issuerOrigin: string,
  handler: (ctx: Context) => Promise<void>,
): (ctx: Context) => Promise<void> {
  return async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      if (!ctx.is('application/json')) throw new CallError(415, 'unsupported_media_type', 'Send JSON.');
      const origin = ctx.get('origin');
      if (origin && origin !== issuerOrigin) throw FORBIDDEN;
      await parseJson(ctx, () => Promise.resolve());
      await handler(ctx);
      await settleRequestTransaction('commit');
    } catch (caught) {
      const error = caught as Error & { status?: number };
      if (error instanceof CallError) {
        ctx.status = error.status;
        ctx.body = { error: error.code, message: error.message };
        return;
      }
      if (error.status && error.status >= 400 && error.status < 500) {
        ctx.status = error.status;
        ctx.body = { error: 'invalid_request', message: 'The request could not be read.' };
        return;
      }
      if (isDatabaseUnavailable(caught)) {
        ctx.status = 503;
        ctx.set('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
        ctx.body = {
          error: 'temporarily_unavailable',
          message: 'The bank is briefly unavailable. Try again shortly.',
        };
        return;
      }
      throw error;
    }
  };
}

/** Throws 403 unless the request's X-CSRF-Token header is the token for `purpose` and `binding`. */
export function requireCsrfHeader(
  ctx: Context,
  keys: readonly string[],
  purpose: string,
  binding: string,
): void {
  if (!isValidCsrfToken(keys, purpose, binding, ctx.get(CSRF_HEADER))) throw FORBIDDEN;
}

/** A field of the JSON body, unchecked; undefined when the body is not an object. */
export function jsonField(ctx: Context, name: string): unknown {
  const body: unknown = ctx.request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  return (body as Record<string, unknown>)[name];
}
