import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { requestOrigin, type AuditRecorder } from '../audit/events.ts';
import { textParam } from './engine-internals.ts';
import { USED_RECOVERY_CODE, secondFactorOf } from './authentication.ts';

/**
 * What the provider does that the customer's activity log must know: sign-ins (with the second
 * factor used), consents and refresh-token reuse. The activity log writes them once the request has committed (a failure
 * there is logged and never fails the customer's or the app's request). When an app last got a
 * token is stored with the token itself (src/oidc/storage/adapter.ts).
 */

export function recordProviderEvents(provider: Provider, audit: AuditRecorder): void {
  const record = (event: Parameters<AuditRecorder['record']>[0]) => audit.record(event);

  // Emitted when the browser comes back from our sign-in or consent screen with the result.
  provider.on('interaction.ended', (ctx: KoaContextWithOIDC) => {
    const { result, session, client } = ctx.oidc;
    const clientId = client?.clientId;
    if (result?.login) {
      const factor = secondFactorOf(result.login.amr ?? [], result[USED_RECOVERY_CODE] === true);
      record({
        customerId: result.login.accountId,
        type: 'sign_in_succeeded',
        clientId,
        ...requestOrigin(ctx),
        detail: { ...(session ? { session: session.uid } : {}), ...(factor ? { factor } : {}) },
      });
    }
    // A payment's approval is recorded as payment_approved by its consent screen, with the payment.
    const forPayment = ctx.oidc.params?.authorization_details !== undefined;
    if (result?.consent && session?.accountId && !forPayment) {
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
}
