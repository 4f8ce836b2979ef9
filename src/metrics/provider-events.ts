import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { Counter, type Registry } from 'prom-client';
import { deliveryFailures, type DeliveryFailureKind } from '../oidc/backchannel-logout.ts';

/**
 * What the provider does, counted: tokens issued by kind, token-endpoint errors by OAuth error
 * code, introspections by result, apps' secrets refused by their limit (429), and back-channel
 * logout deliveries that failed. Read from the provider's events and its answers, never from
 * the tokens themselves: no label carries a token, a client_id or a customer.
 */

const DELIVERY_FAILURE_KINDS: readonly DeliveryFailureKind[] = [
  'refused',
  'unreachable',
  'timeout',
  'rejected',
];

interface EngineError {
  error?: unknown;
  statusCode?: unknown;
}

/** An OAuth error code comes from the engine's own list; anything else is not a label value. */
function errorCode(error: EngineError): string {
  return typeof error.error === 'string' && /^[a-z_]{1,64}$/.test(error.error) ? error.error : 'other';
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function countProviderEvents(
  provider: Provider,
  registry: Registry,
  throttleRefusals: Counter<'limit'>,
): void {
  const tokens = new Counter({
    name: 'passbook_tokens_issued_total',
    help: 'Tokens and codes issued, by kind.',
    labelNames: ['kind'],
    registers: [registry],
  });
  const grantErrors = new Counter({
    name: 'passbook_token_errors_total',
    help: 'Token endpoint requests refused, by OAuth error code.',
    labelNames: ['error'],
    registers: [registry],
  });
  const introspections = new Counter({
    name: 'passbook_introspections_total',
    help: 'Introspection requests, by result: active, inactive, or error (refused or failed).',
    labelNames: ['result'],
    registers: [registry],
  });
  new Counter({
    name: 'passbook_backchannel_logout_failures_total',
    help: 'Back-channel logout tokens not delivered, by kind of failure (since the process started).',
    labelNames: ['kind'],
    registers: [registry],
    // The count lives in src/oidc/backchannel-logout.ts, which knows nothing of metrics.
    collect() {
      this.reset();
      const counts = deliveryFailures.byKind();
      for (const kind of DELIVERY_FAILURE_KINDS) this.inc({ kind }, counts[kind]);
    },
  });

  provider.on('access_token.saved', () => tokens.inc({ kind: 'access_token' }));
  provider.on('access_token.issued', () => tokens.inc({ kind: 'access_token' }));
  provider.on('refresh_token.saved', () => tokens.inc({ kind: 'refresh_token' }));
  provider.on('authorization_code.saved', () => tokens.inc({ kind: 'authorization_code' }));
  provider.on('client_credentials.saved', () => tokens.inc({ kind: 'client_credentials' }));
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    if (isJsonObject(ctx.body) && typeof ctx.body.id_token === 'string') tokens.inc({ kind: 'id_token' });
  });

  // The secret limit answers 429 invalid_client wherever an app authenticates.
  const countSecretRefusal = (error: EngineError) => {
    if (error.statusCode === 429 && error.error === 'invalid_client')
      throttleRefusals.inc({ limit: 'client_secret' });
  };
  provider.on('grant.error', (_ctx, error: EngineError) => {
    grantErrors.inc({ error: errorCode(error) });
    countSecretRefusal(error);
  });
  provider.on('introspection.error', (_ctx, error: EngineError) => countSecretRefusal(error));
  provider.on('revocation.error', (_ctx, error: EngineError) => countSecretRefusal(error));
  provider.on('pushed_authorization_request.error', (_ctx, error: EngineError) => countSecretRefusal(error));

  // Introspection has no success event: its answer says whether the token was active.
  provider.use(async (ctx: KoaContextWithOIDC, next) => {
    await next();
    const oidc: KoaContextWithOIDC['oidc'] | undefined = ctx.oidc;
    if (oidc?.route !== 'introspection') return;
    const body: unknown = ctx.body;
    const result =
      ctx.status !== 200 || !isJsonObject(body) ? 'error' : body.active === true ? 'active' : 'inactive';
    introspections.inc({ result });
  });
}
