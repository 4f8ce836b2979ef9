import type { IncomingMessage } from 'node:http';
import type Koa from 'koa';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * Request counts and durations by route, method and status. A route is named, never taken from
 * the request: a path carries interaction uids, account ids, sometimes what a client typed, and
 * each distinct label value is a new time series kept in memory. Our own routers give the pattern
 * they matched (`/interaction/:uid/login`); oidc-provider's routes give the engine's name for
 * them (`token`, `authorization`); anything else is `unmatched`.
 */

export interface HttpMetrics {
  middleware: Koa.Middleware;
  /** Lets the provider say which of its routes answered; it handles ctx.req in a context of its own. */
  nameEngineRoutes(provider: Provider): void;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Seconds: from a cached discovery document to an argon2id sign-in on a busy node. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The pattern @koa/router matched; only a string, which is always one written in our code. */
function matchedPattern(ctx: Koa.Context): string | undefined {
  return '_matchedRoute' in ctx && typeof ctx._matchedRoute === 'string' ? ctx._matchedRoute : undefined;
}

export function httpMetrics(registry: Registry): HttpMetrics {
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route name and status.',
    labelNames,
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method, route name and status.',
    labelNames,
    buckets: BUCKETS,
    registers: [registry],
  });
  const engineRoutes = new WeakMap<IncomingMessage, string>();

  return {
    async middleware(ctx, next) {
      const started = performance.now();
      let escaped = false;
      try {
        await next();
      } catch (error) {
        escaped = true;
        throw error;
      } finally {
        const labels = {
          method: METHODS.has(ctx.method) ? ctx.method : 'other',
          route: engineRoutes.get(ctx.req) ?? matchedPattern(ctx) ?? 'unmatched',
          // oidc-provider writes the status on the raw response; an error escaping is Koa's 500.
          status: String(escaped ? 500 : ctx.res.statusCode),
        };
        requests.inc(labels);
        durations.observe(labels, (performance.now() - started) / 1000);
      }
    },

    nameEngineRoutes(provider) {
      provider.use(async (ctx: KoaContextWithOIDC, next) => {
        try {
          await next();
        } finally {
          // Unset when none of the engine's routes matched.
          const oidc: KoaContextWithOIDC['oidc'] | undefined = ctx.oidc;
          if (oidc) engineRoutes.set(ctx.req, oidc.route);
        }
      });
    },
  };
}
