import type { Context } from 'koa';
import { PAGE_TEMPLATES, VIEWS_DIGEST } from './page-templates.generated.ts';
import { viewsDigest } from './views-digest.ts';

/**
 * The bank's pages, rendered from views/*.pug as compiled ahead of time by `npm run views` into
 * src/http/page-templates.generated.ts: a node never loads pug's compiler.
 */

/** Renders views/<name>.pug as the response; every page extends views/layout.pug. */
export function renderPage(
  ctx: Context,
  name: string,
  locals: Record<string, unknown> = {},
  status?: number,
): void {
  const render = PAGE_TEMPLATES[name];
  if (!render) throw new Error(`no page template named ${JSON.stringify(name)}`);
  if (status) ctx.status = status;
  ctx.type = 'html';
  ctx.body = render(locals);
}

/**
 * True when views/ holds other templates than the compiled ones, which is what a developer who
 * edited a template and did not run `npm run views` would otherwise only notice by its absence.
 */
export function compiledPagesAreStale(): boolean {
  return viewsDigest() !== VIEWS_DIGEST;
}

/** What the customer reads for an OAuth error code: a plain sentence, never internal detail. */
const FRIENDLY_ERRORS: Record<string, string> = {
  invalid_request: 'The app that sent you here made a request the bank cannot accept.',
  invalid_client: 'The app that sent you here is not registered with the bank.',
  invalid_redirect_uri: 'The app that sent you here asked to return to an address it has not registered.',
  unauthorized_client: 'The app that sent you here is not allowed to make this request.',
  access_denied: 'Access was not granted.',
  unsupported_response_type: 'The app that sent you here made a request the bank does not support.',
  invalid_scope: 'The app that sent you here asked for access the bank does not offer.',
  invalid_request_uri: 'The sign-in request has expired or was already used.',
  session_not_found:
    'Your sign-in took too long or was already completed. Go back to the app and start again.',
  not_found: 'There is nothing at this address.',
  csrf_failed: "This form has expired or did not come from the bank's page. Go back and try again.",
  method_not_allowed: 'This address does not accept that kind of request.',
  request_too_large: 'The request was too large.',
  temporarily_unavailable: 'The bank cannot serve this page right now. Please try again in a few moments.',
  accounts_unavailable:
    'The bank cannot show your accounts right now, so nothing was approved. Please try again in a few moments.',
  server_error: 'Something went wrong on our side. Please try again in a moment.',
};

function friendlyMessage(error: string): string {
  return FRIENDLY_ERRORS[error] ?? 'The request could not be completed.';
}

/** The bank's error page: a heading, a sentence, and the OAuth error code for support staff. */
export function renderErrorPage(ctx: Context, status: number, error: string): void {
  renderPage(ctx, 'error', { title: 'Something went wrong', message: friendlyMessage(error), error }, status);
}
