import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createKnex, type Knex } from '../db/knex.ts';
import {
  closeServer,
  createServiceLogger,
  finishesBy,
  databaseCheck,
  requestListener,
  serviceHealth,
  type Logger,
} from '../service/kit.ts';
import { createBankApi } from './app.ts';
import { requireDatabaseUrl, type BankApiConfig } from './config.ts';
import { assertConfined } from './database-role.ts';
import { createIntrospector } from './introspection.ts';
import { accountLookupVerifier } from './consent-accounts.ts';
import { migrateBankApi, requireBankMigrationsApplied } from './migrate.ts';
import { bankApiMetrics } from '../metrics/bank-api.ts';
import { serveMetrics, type MetricsServer } from '../metrics/server.ts';

/**
 * Wires a running bank API: its own connection pool on BANK_API_DATABASE_URL, the check that this
 * role cannot reach Passbook's tables, its own migrations, then the HTTP server. Used by the
 * stand-alone entry point, the demo and the tests alike, so all of them run the real separation.
 */

export interface RunningBankApi {
  url: string;
  /** The bank API's own pool (its role, its schema): the demo seeds through it, tests read through it. */
  knex: Knex;
  /** Where GET /metrics is served (docs/metrics.md), unless METRICS_PORT is off. */
  metricsUrl: string | undefined;
  close(): Promise<void>;
}

/** The bank API's logger: the services' shared one (src/service/kit.ts), named "bank-api". */
export function createBankApiLogger(
  logLevel: string,
  destination: NodeJS.WritableStream = process.stdout,
  environment?: string,
): Logger {
  return createServiceLogger('bank-api', logLevel, destination, environment);
}

/**
 * Refuses to serve on a role that could read what is not the bank's: a misconfigured URL (say,
 * Passbook's own) would otherwise put customers' password hashes one bug away from an API.
 */
async function prepareDatabase(knex: Knex, log: Logger): Promise<void> {
  const { rows } = await knex.raw<{ rows: { role: string }[] }>('SELECT current_user AS role');
  const role = rows[0]?.role ?? '';
  await assertConfined(knex, role);
  const applied = await migrateBankApi(knex);
  if (applied.length > 0) log.info({ applied, role }, 'bank API migrations applied');
}

export async function startBankApi(
  config: BankApiConfig,
  options: { log?: Logger } = {},
): Promise<RunningBankApi> {
  const log = options.log ?? createBankApiLogger(config.logLevel);
  const knex = createKnex(requireDatabaseUrl(config), undefined, log, config.databaseTimeouts);
  const server = http.createServer();
  const metrics = bankApiMetrics(knex);
  let metricsServer: MetricsServer | undefined;
  const health = serviceHealth(
    { database: databaseCheck(knex), migrations: () => requireBankMigrationsApplied(knex) },
    log,
  );
  try {
    await prepareDatabase(knex, log);
    const introspect = metrics.countIntrospections(createIntrospector(config));
    const app = createBankApi({
      knex,
      introspect,
      verifyAccountLookup: accountLookupVerifier({ issuer: config.issuer, audience: config.publicUrl }),
      log,
      publicUrl: config.publicUrl,
      countRequests: metrics.http,
      health,
      trustProxy: config.trustProxy,
    });
    if (config.metrics) metricsServer = await serveMetrics(metrics.registry, config.metrics);
    server.on('request', requestListener(app));
    server.listen(config.port);
    await once(server, 'listening');
  } catch (error) {
    await metricsServer?.close();
    await knex.destroy();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  log.info({ port, issuer: config.issuer, metrics: metricsServer?.url }, 'bank API is listening');
  return {
    // Where apps reach it: the address DPoP proofs name and payment tokens are for.
    url: config.publicUrl,
    knex,
    metricsUrl: metricsServer?.url,
    async close() {
      const deadline = Date.now() + config.shutdownTimeoutSeconds * 1000;
      health.startDraining();
      const { forced } = await closeServer(server, deadline - Date.now());
      if (forced) log.warn('shutdown timeout: requests still in flight were cut off');
      await metricsServer?.close();
      if (!(await finishesBy(knex.destroy(), deadline))) {
        log.warn('shutdown timeout: database work still under way was abandoned');
      }
    },
  };
}
