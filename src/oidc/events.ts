import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import type { Logger } from '../log.ts';
import { requestOrigin, type AuditRecorder } from '../audit/events.ts';
import { textParam } from './engine-internals.ts';
import { markGrantUsed } from './storage/grants-and-sessions.ts';

/**
 * What the provider does that the customer's activity log and connected-apps page must know:
 * sign-ins, consents, refresh-token reuse, and when an app last got a token. A failure here is
 * logged and never fails the customer's or the app's request.
 */

export function recordProviderEvents(
  provider: Provider,
  knex: Knex,
  audit: AuditRecorder,
  log: Logger,
): void {
  const record = (event: Parameters<AuditRecorder['record']>[0]) => audit.record(event);

  // Emitted when the browser comes back from our sign-in or consent screen with the result.
  provider.on('interaction.ended', (ctx: KoaContextWithOIDC) => {
    const { result, session, client } = ctx.oidc;
    const clientId = client?.clientId;
    if (result?.login) {
      record({
        customerId: result.login.accountId,
        type: 'sign_in_succeeded',
        clientId,
        ...requestOrigin(ctx),
        detail: session ? { session: session.uid } : {},
      });
    }
    if (result?.consent && session?.accountId) {
      record({
        customerId: session.accountId,
        type: 'consent_given',
        clientId,
        ...requestOrigin(ctx),
        detail: { scope: textParam(ctx.oidc.params, 'scope') ?? '' },
      });
    }
  });

  // RP-initiated logout, confirmed by the customer on the bank's sign-out page.
  provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
    const accountId = ctx.oidc.session?.accountId;
    if (!accountId) return;
    record({
      customerId: accountId,
      type: 'signed_out',
      clientId: ctx.oidc.client?.clientId,
      ...requestOrigin(ctx),
    });
  });

  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: Error & { error_detail?: string }) => {
    if (error.error_detail !== 'refresh token already used') return;
    record({
      customerId: ctx.oidc.entities.Account?.accountId,
      type: 'refresh_token_reuse_detected',
      clientId: ctx.oidc.client?.clientId,
      ...requestOrigin(ctx),
    });
  });

  provider.on('access_token.saved', (token: { grantId?: string }) => {
    if (!token.grantId) return;
    markGrantUsed(knex, token.grantId).catch((error: unknown) =>
      log.warn({ err: error }, 'grant last-used write failed'),
    );
  });
}
