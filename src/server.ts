import Koa from 'koa';
import type Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { Config } from './config.ts';
import type { Knex } from './db/knex.ts';
import type { Logger } from './log.ts';
import { databaseCheck, requestLog, serviceHealth, type ServiceHealth } from './service/kit.ts';
import { requireMigrationsApplied } from './db/migrate.ts';
import { assetsRouter } from './http/assets.ts';
import { errorPages } from './http/errors.ts';
import { methodNotAllowedRouter } from './http/method-not-allowed.ts';
import { refuseNulBytes } from './http/nul-bytes.ts';
import { securityHeaders } from './http/security-headers.ts';
import { accountRouter } from './account-pages/router.ts';
import { bankSessions } from './account-pages/bank-session.ts';
import { securityRouter } from './account-pages/security.ts';
import type { DataCipher } from './crypto/data-cipher.ts';
import { loadDataCipher } from './crypto/data-keys.ts';
import { secondFactors, twoStepSettings } from './customers/second-factors.ts';
import { interactionsRouter } from './interactions/router.ts';
import { passkeyPagesRouter } from './account-pages/passkeys.ts';
import { passkeySignInRouter } from './passkeys/sign-in-routes.ts';
import { loadCookieKeys, loadSigningKeys } from './oidc/keys.ts';
import { cookieSignatures } from './http/cookie-signatures.ts';
import { signingKeyRefresher, type SigningKeyRefresher } from './oidc/key-refresh.ts';
import { recordProviderEvents } from './oidc/events.ts';
import { reportLogoutDeliveryFailures } from './oidc/backchannel-logout.ts';
import { createProvider, dpopNonceSecret } from './oidc/provider.ts';
import { auditRecorder, type AuditRecorder } from './audit/events.ts';
import { signInService } from './sign-in/sign-in.ts';
import { withPrefetchScope } from './oidc/storage/adapter.ts';
import { requestTransaction } from './db/request-transaction.ts';
import { commitBeforeEngineAnswers } from './oidc/commit-before-answer.ts';
import type { PassbookMetrics } from './metrics/passbook.ts';
import type { LiveTokenCache } from './oidc/storage/live-tokens.ts';
import type { CustomerCopies } from './customers/customer-copies.ts';
import { accountLookup } from './payments/account-lookup.ts';

export interface PassbookApp {
  app: Koa;
  provider: Provider;
  /** Activity-log writes still under way; shutdown waits for them. */
  audit: AuditRecorder;
  /** Encrypts data at rest (DATA_ENCRYPTION_KEY); the demo seed enrols its authenticator app with it. */
  cipher: DataCipher;
  /** Brings the provider's signing keys in line with the database (a timer in src/start.ts). */
  keys: SigningKeyRefresher;
  /** /livez and /readyz; shutdown turns /readyz to 503 first. */
  health: ServiceHealth;
}

type RoutedContext = Parameters<ReturnType<Router['routes']>>[0];

/** The engine's busiest endpoints: every token request, introspection, UserInfo call and key fetch. */
const HOT_ENGINE_REQUESTS: [method: string, path: string][] = [
  ['POST', '/token'],
  ['POST', '/token/introspection'],
  ['POST', '/token/revocation'],
  ['GET', '/me'],
  ['POST', '/me'],
  ['GET', '/jwks'],
  ['GET', '/.well-known/openid-configuration'],
];

/**
 * Those of the hot requests that none of our routers answers, as "METHOD /path": they go past the
 * routers straight to the engine. Read from the routers themselves, so a route added later for one
 * of these is never passed by.
 */
function engineOnlyRequests(routers: Router[]): Set<string> {
  return new Set(
    HOT_ENGINE_REQUESTS.filter(([method, path]) =>
      routers.every((router) => !router.match(path, method).route),
    ).map(([method, path]) => `${method} ${path}`),
  );
}

/**
 * The Koa app: headers and error pages first, then our own routes, then oidc-provider, which
 * answers everything else (its routes end the response, so it must come last).
 */
export async function createApp(
  config: Config,
  knex: Knex,
  log: Logger,
  metrics: PassbookMetrics,
  liveTokens?: LiveTokenCache,
  customerCopies?: CustomerCopies,
): Promise<PassbookApp> {
  const [cookieKeys, cipher] = await Promise.all([
    loadCookieKeys(knex, config.cookieKeys),
    loadDataCipher(knex, config.dataEncryptionKeys),
  ]);
  const signingKeys = await loadSigningKeys(knex, cipher);
  const factors = secondFactors(knex, cipher);
  const provider = createProvider({
    config,
    knex,
    signingKeys,
    cookieKeys,
    hasSecondFactor: (customerId) => factors.hasAuthenticatorApp(customerId),
    dpopNonceSecret: dpopNonceSecret(config, cipher),
    liveTokens,
    customerCopies,
  });
  const keys = signingKeyRefresher(provider, knex, cipher, signingKeys, log);
  provider.on('server_error', (_ctx, error) => log.error({ err: error }, 'provider error'));
  const audit = auditRecorder(knex, log);
  recordProviderEvents(provider, audit);
  reportLogoutDeliveryFailures(provider, log);
  metrics.observeProvider(provider);
  const sessions = bankSessions(provider, knex, config.lifetimes, log);
  const signIn = metrics.countSignIns(
    signInService({ knex, audit, throttle: config.throttle, secondFactors: factors }),
  );
  const twoStep = twoStepSettings(knex, cipher);
  const health = serviceHealth(
    {
      database: databaseCheck(knex),
      migrations: () => requireMigrationsApplied(knex),
      keys: () =>
        signingKeys.length > 0 ? Promise.resolve() : Promise.reject(new Error('no signing keys loaded')),
    },
    log,
  );

  // Our cookies and the provider's are signed with the same keys.
  const app = new Koa({ proxy: config.trustProxy });
  app.keys = cookieSignatures(cookieKeys);
  app.silent = true;
  // A grant read with a token serves the same request's grant lookup (see src/oidc/storage/adapter.ts).
  app.use((_ctx, next) => withPrefetchScope(next));
  app.use(requestLog(log));
  app.use(metrics.http);
  app.use(securityHeaders());
  app.use(errorPages(log));
  // One request, one transaction, committed before the answer (src/db/request-transaction.ts).
  app.use(requestTransaction(knex));
  commitBeforeEngineAnswers(provider, log);
  app.use(refuseNulBytes());
  // The bank API's answer about a customer's accounts, for the consent screens and the account pages.
  const lookUpAccounts = accountLookup({
    issuer: config.issuer,
    bankApiUrl: config.bankApiUrl,
    signingKeys: () => keys.current(),
  });
  const routers = [
    health.router,
    assetsRouter(),
    methodNotAllowedRouter(),
    interactionsRouter({
      provider,
      knex,
      cookieKeys,
      signIn,
      customerCopies,
      payments: {
        policy: { maxAmount: config.paymentMaxAmount, bankApiUrl: config.bankApiUrl },
        lookUpAccounts,
      },
    }),
    accountRouter({ provider, knex, cookieKeys, sessions, signIn, lookUpAccounts }),
    securityRouter({ knex, cookieKeys, sessions, twoStep }),
    passkeyPagesRouter({ knex, cookieKeys, sessions, issuer: config.issuer, log }),
    passkeySignInRouter({ provider, knex, cookieKeys, sessions, issuer: config.issuer, log }),
  ];
  const straightToEngine = engineOnlyRequests(routers);
  for (const router of routers) {
    const routes = router.routes();
    // Matching every route of every router cost the hot endpoints a sixth of their time.
    app.use(async (ctx: RoutedContext, next): Promise<void> => {
      if (straightToEngine.has(`${ctx.method} ${ctx.path}`)) await next();
      else await routes(ctx, next);
    });
  }
  const handleWithProvider = provider.callback();
  app.use(async (ctx) => {
    ctx.respond = false;
    await handleWithProvider(ctx.req, ctx.res);
  });
  return { app, provider, audit, cipher, keys, health };
}
