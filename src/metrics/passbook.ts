import type Koa from 'koa';
import type Provider from 'oidc-provider';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import type { Knex } from '../db/knex.ts';
import type { SignIn } from '../sign-in/sign-in.ts';
import { countDatabaseUse } from './database.ts';
import { httpMetrics } from './http.ts';
import { countProviderEvents } from './provider-events.ts';
import { countSignIns } from './sign-in.ts';
import { countTokenCache } from './token-cache.ts';
import type { ModelChangeFeed } from '../oidc/storage/change-feed.ts';
import type { LiveTokenCache } from '../oidc/storage/live-tokens.ts';

/**
 * One Passbook's metrics (docs/metrics.md): a registry of its own rather than prom-client's
 * global one, so that several Passbooks in one process (the tests) each count only their own.
 */

export interface PassbookMetrics {
  registry: Registry;
  /** Counts every request; goes first, so that it sees every answer. */
  http: Koa.Middleware;
  observeProvider(provider: Provider): void;
  countSignIns(signIn: SignIn): SignIn;
  observeTokenCache(cache: LiveTokenCache, feed: ModelChangeFeed): void;
}

export function passbookMetrics(knex: Knex): PassbookMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'passbook' });
  // Process metrics, event-loop lag (nodejs_eventloop_lag_*) among them.
  collectDefaultMetrics({ register: registry });
  countDatabaseUse(knex, registry);
  const http = httpMetrics(registry);
  const throttleRefusals = new Counter({
    name: 'passbook_throttle_refusals_total',
    help: 'Attempts refused by a limit on guessing, by limit: sign_in (a username or address paused), client_secret.',
    labelNames: ['limit'],
    registers: [registry],
  });
  return {
    registry,
    http: http.middleware,
    observeProvider(provider) {
      http.nameEngineRoutes(provider);
      countProviderEvents(provider, registry, throttleRefusals);
    },
    countSignIns: (signIn) => countSignIns(signIn, registry, throttleRefusals),
    observeTokenCache: (cache, feed) => countTokenCache(cache, feed, registry),
  };
}
