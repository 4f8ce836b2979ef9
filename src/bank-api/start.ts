import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { createKnex, type Knex } from '../db/knex.ts';
import { REDACTED_PATHS } from '../log.ts';
import { createBankApi } from './app.ts';
import { requireDatabaseUrl, type BankApiConfig } from './config.ts';
import { createIntrospector } from './introspection.ts';

export interface RunningBankApi {
  url: string;
  close(): Promise<void>;
}

export function createBankApiLogger(
  logLevel: string,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  return pino(
    {
      level: logLevel,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { service: 'bank-api' },
    },
    destination,
  );
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
