import Router, { type RouterContext } from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Interaction, InteractionResults } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import { findCustomerById } from '../customers/customers.ts';
import { recordEvent, requestOrigin } from '../audit/events.ts';
import type { SignIn } from '../sign-in/sign-in.ts';
import { csrfToken, isValidCsrfToken } from '../http/csrf.ts';
import { formBodies, formField } from '../http/forms.ts';
import { PageError } from '../http/errors.ts';
import { noStore } from '../http/security-headers.ts';
import { renderPage } from '../http/views.ts';
import { SCOPE_CATALOGUE, consentLinesFor } from '../oidc/scopes.ts';
import { consentPromptDetails, textParam } from '../oidc/engine-internals.ts';

/**
 * The bank's sign-in and consent screens. oidc-provider sends the customer here with an
 * interaction uid whenever it needs a login or a consent; we answer with a result and send the
 * browser back to the provider.
 */

export interface InteractionDependencies {
  provider: Provider;
  knex: Knex;
  cookieKeys: string[];
  signIn: SignIn;
}

const CSRF_PURPOSE = 'interaction';

export function interactionsRouter({ provider, knex, cookieKeys, signIn }: InteractionDependencies): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  const forms = formBodies();

  /** The interaction behind this request, bound to this browser by the provider's cookie. */
  async function loadInteraction(ctx: RouterContext): Promise<Interaction> {
    try {
      const interaction = await provider.interactionDetails(ctx.req, ctx.res);
      if (interaction.uid !== ctx.params.uid) throw new Error('interaction uid mismatch');
      return interaction;
    } catch {
      throw new PageError(400, 'session_not_found');
    }
  }

  function requireCsrf(ctx: Context, interaction: Interaction): void {
    if (!isValidCsrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid, formField(ctx, 'csrf'))) {
      throw new PageError(403, 'csrf_failed');
    }
  }

  async function clientName(interaction: Interaction): Promise<string> {
    const client = await provider.Client.find(clientIdOf(interaction));
    return client?.clientName ?? clientIdOf(interaction);
  }

  async function finish(ctx: Context, result: InteractionResults): Promise<void> {
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: false,
    });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  async function showLogin(ctx: Context, interaction: Interaction, error?: string, status?: number) {
    const name = await clientName(interaction);
    renderPage(
      ctx,
      'login',
      {
        title: 'Sign in',
        action: `/interaction/${interaction.uid}/login`,
        cancelAction: `/interaction/${interaction.uid}/abort`,
        csrf: csrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid),
        lead: `to continue to ${name}`,
        clientName: name,
        username: formField(ctx, 'username') || textParam(interaction.params, 'login_hint'),
        error,
      },
      status,
    );
  }

  async function showConsent(ctx: Context, interaction: Interaction) {
    const requested = (textParam(interaction.params, 'scope') ?? '').split(' ');
    const notYetAllowed = consentPromptDetails(interaction).missingOIDCScope;
    const customer = await findCustomerById(knex, String(interaction.session?.accountId));
    const alwaysAsk = SCOPE_CATALOGUE.filter((entry) => entry.alwaysAsk && requested.includes(entry.scope));
    renderPage(ctx, 'consent', {
      title: 'Allow access',
      uid: interaction.uid,
      csrf: csrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid),
      clientName: await clientName(interaction),
      customerName: customer?.name ?? customer?.username ?? 'you',
      permissions: consentLinesFor(requested, notYetAllowed),
      sensitive: alwaysAsk.map((entry) => entry.consentWording),
    });
  }

  router.use(noStore());

  router.get('/', async (ctx) => {
    const interaction = await loadInteraction(ctx);
    if (interaction.prompt.name === 'login') return showLogin(ctx, interaction);
    if (interaction.prompt.name === 'consent') return showConsent(ctx, interaction);
    throw new PageError(400, 'invalid_request');
  });

  router.post('/login', forms, async (ctx) => {
    const interaction = await loadInteraction(ctx);
    requireCsrf(ctx, interaction);
    if (interaction.prompt.name !== 'login') throw new PageError(400, 'session_not_found');
    const outcome = await signIn({
      username: formField(ctx, 'username'),
      password: formField(ctx, 'password'),
      clientId: clientIdOf(interaction),
      origin: requestOrigin(ctx),
    });
    if (!outcome.ok) return showLogin(ctx, interaction, outcome.message, outcome.status);
    // The session cookie lasts only as long as the browser; the server-side session has its own limits.
    await finish(ctx, { login: { accountId: outcome.customerId, amr: outcome.amr, remember: false } });
  });

  router.post('/consent', forms, async (ctx) => {
    const interaction = await loadInteraction(ctx);
    requireCsrf(ctx, interaction);
    if (interaction.prompt.name !== 'consent') throw new PageError(400, 'session_not_found');
    if (formField(ctx, 'decision') !== 'allow') {
      await recordEvent(knex, {
        customerId: interaction.session?.accountId,
        type: 'consent_denied',
        clientId: clientIdOf(interaction),
        ...requestOrigin(ctx),
      });
      await finish(ctx, { error: 'access_denied', error_description: 'the customer did not allow access' });
      return;
    }
    const grantId = await grantRequestedAccess(provider, interaction);
    await finish(ctx, { consent: { grantId } });
  });

  router.post('/abort', forms, async (ctx) => {
    const interaction = await loadInteraction(ctx);
    requireCsrf(ctx, interaction);
    await finish(ctx, { error: 'access_denied', error_description: 'the customer cancelled the sign-in' });
  });

  return router;
}

/** The app this interaction is for; the engine puts its client_id in every interaction's params. */
function clientIdOf(interaction: Interaction): string {
  return textParam(interaction.params, 'client_id') ?? '';
}

/** Adds what the consent screen showed to the customer's grant for this app, and saves it. */
async function grantRequestedAccess(provider: Provider, interaction: Interaction): Promise<string> {
  const { missingOIDCScope, missingOIDCClaims } = consentPromptDetails(interaction);
  const accountId = String(interaction.session?.accountId);
  const clientId = clientIdOf(interaction);
  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
  const grant = existing ?? new provider.Grant({ accountId, clientId });
  if (missingOIDCScope.length) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims.length) grant.addOIDCClaims(missingOIDCClaims);
  return grant.save();
}
