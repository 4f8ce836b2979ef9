import Router from '@koa/router';
import { renderErrorPage } from './views.ts';

/**
 * Clear answers where oidc-provider would say a bare 404 for a known endpoint and a wrong method.
 *
 * POST at the authorization and end-session endpoints is deliberately not offered: the provider
 * allows it only with a SameSite=None session cookie, and the bank's session cookie is
 * SameSite=Lax so that no other site can ride on it.
 */
export function methodNotAllowedRouter(): Router {
  const router = new Router();
  for (const path of ['/auth', '/session/end']) {
    router.post(path, (ctx) => {
      ctx.set('Allow', 'GET');
      renderErrorPage(ctx, 405, 'method_not_allowed');
    });
  }
  for (const path of ['/token', '/token/introspection', '/token/revocation', '/request']) {
    router.get(path, (ctx) => {
      ctx.set('Allow', 'POST');
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 405;
      ctx.body = { error: 'invalid_request', error_description: `${path} accepts only POST` };
    });
  }
  return router;
}
