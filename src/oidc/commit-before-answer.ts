import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Logger } from '../log.ts';
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../db/unavailable.ts';
import { commitsWrites, settleRequestTransaction } from '../db/request-transaction.ts';
import { renderErrorPage } from '../http/views.ts';
import { beforeEngineAnswers, engineRoute } from './engine-internals.ts';
import { answersErrorsWithPage } from './provider.ts';

/**
 * The request's transaction (src/db/request-transaction.ts) on oidc-provider's routes. The
 * engine writes its answers itself, so the transaction is settled inside it, once the route has
 * answered and before the answer goes out: tokens reach an app only once they are stored. A commit
 * that failed replaces the answer with an error in the route's own form (the error page where a
 * browser opened it, RFC JSON for an app): 503 temporarily_unavailable with Retry-After when the
 * database could not be reached, so that the app retries what was not stored; 500 otherwise.
 * A write held back to the commit that is the app's error (a code or refresh token another
 * request redeemed first, src/oidc/storage/held-writes.ts) is answered as that error.
 */

/** The app's error found at the commit, answered as the engine would have: nothing was stored. */
function answerClientError(ctx: Context, error: errors.OIDCProviderError): void {
  ctx.remove('Location');
  ctx.remove('Set-Cookie');
  ctx.status = error.statusCode;
  ctx.body = { error: error.error, error_description: error.error_description };
}

function answerFailedCommit(ctx: Context, error: unknown): void {
  const unavailable = isDatabaseUnavailable(error);
  const status = unavailable ? 503 : 500;
  const code = unavailable ? 'temporarily_unavailable' : 'server_error';
  ctx.remove('Location');
  ctx.remove('Set-Cookie');
  if (unavailable) ctx.set('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
  if (answersErrorsWithPage(engineRoute(ctx))) {
    renderErrorPage(ctx, status, code);
    return;
  }
  ctx.status = status;
  ctx.body = {
    error: code,
    error_description: unavailable
      ? 'the service is temporarily unavailable; try again shortly'
      : 'oops! something went wrong',
  };
}

export function commitBeforeEngineAnswers(provider: Provider, log: Logger): void {
  beforeEngineAnswers(provider, async (ctx, escaped) => {
    try {
      await settleRequestTransaction(!escaped && commitsWrites(ctx.status) ? 'commit' : 'rollback');
    } catch (error) {
      if (error instanceof errors.OIDCProviderError && error.statusCode < 500) {
        answerClientError(ctx, error);
        return;
      }
      log[isDatabaseUnavailable(error) ? 'warn' : 'error']({ err: error, path: ctx.path }, 'commit failed');
      answerFailedCommit(ctx, error);
    }
  });
}
