import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createKnex, type Knex } from '../db/knex.ts';
import { createServiceLogger, type Logger } from '../service/kit.ts';
import { createBankApi } from './app.ts';
import { requireDatabaseUrl, type BankApiConfig } from './config.ts';
import { createIntrospector } from './introspection.ts';

export interface RunningBankApi {
  url: string;
  close(): Promise<void>;
}

/** The bank API's logger: the services' shared one (src/service/kit.ts), named "bank-api". */
export function createBankApiLogger(
  logLevel: string,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  return createServiceLogger('bank-api', logLevel, destination);
}

/**
 * Starts the bank API. With `knex` it shares the caller's connection pool (the demo, the tests);
 * without, it opens its own on DATABASE_URL and closes it on close().
 */
export async function startBankApi(
  config: BankApiConfig,
  options: { knex?: Knex; log?: Logger } = {},
): Promise<RunningBankApi> {
  const log = options.log ?? createBankApiLogger(config.logLevel);
  const knex = options.knex ?? createKnex(requireDatabaseUrl(config));
  const app = createBankApi({ knex, introspect: createIntrospector(config), log });
  const server = http.createServer(app.callback());
  try {
    server.listen(config.port);
    await once(server, 'listening');
  } catch (error) {
    if (!options.knex) await knex.destroy();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  log.info({ port, issuer: config.issuer }, 'bank API is listening');
  return {
    url: `http://localhost:${port}`,
    async close() {
      server.closeIdleConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (!options.knex) await knex.destroy();
    },
  };
}
