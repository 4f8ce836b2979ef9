import Router from '@koa/router';
import type { Context, Next } from 'koa';

/**
 * What Passbook refuses out loud rather than let oidc-provider half-support. DPoP (RFC 9449) is
 * switched off in the provider until the bank API can verify proofs: without this, an app that
 * sends a DPoP proof would be told in `token_type` that it got a Bearer token, which is easy to
 * miss. It is told instead, at the token and PAR endpoints, that DPoP is not offered.
 */

const DPOP_NOT_SUPPORTED = {
  error: 'invalid_request',
  error_description: 'DPoP is not supported by this server; send no DPoP header to receive Bearer tokens',
};

async function refuseDpop(ctx: Context, next: Next): Promise<void> {
  if (ctx.get('dpop') === '') {
    await next();
    return;
  }
  ctx.status = 400;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = DPOP_NOT_SUPPORTED;
}

export function refusedFeaturesRouter(): Router {
  const router = new Router();
  for (const path of ['/token', '/request']) router.post(path, refuseDpop);
  return router;
}
