import type Koa from 'koa';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import type { Introspect } from '../bank-api/introspection.ts';
import { PassbookUnavailableError } from '../bank-api/introspection.ts';
import type { Knex } from '../db/knex.ts';
import { countDatabaseUse } from './database.ts';
import { httpMetrics } from './http.ts';

/**
 * The bank API's metrics (docs/metrics.md), in a registry of its own: its requests, its pool
 * and queries, the process, and how its introspections at Passbook went. `unavailable` is the
 * fail-closed case (Passbook unreachable, slow, or answering an error): every one is a customer
 * refused with 503.
 */

export interface BankApiMetrics {
  registry: Registry;
  http: Koa.Middleware;
  countIntrospections(introspect: Introspect): Introspect;
}

export function bankApiMetrics(knex: Knex): BankApiMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'bank-api' });
  collectDefaultMetrics({ register: registry });
  countDatabaseUse(knex, registry);
  const introspections = new Counter({
    name: 'bank_api_introspections_total',
    help: 'Token introspections at Passbook, by result: active, inactive, unavailable (answered 503).',
    labelNames: ['result'],
    registers: [registry],
  });
  return {
    registry,
    http: httpMetrics(registry).middleware,
    countIntrospections(introspect) {
      return async (token) => {
        try {
          const found = await introspect(token);
          introspections.inc({ result: found ? 'active' : 'inactive' });
          return found;
        } catch (error) {
          introspections.inc({ result: error instanceof PassbookUnavailableError ? 'unavailable' : 'error' });
          throw error;
        }
      };
    },
  };
}
