import type { Logger } from 'pino';
import { createExampleLogger, listen } from '../common/server.ts';
import { ensureSettleUpKey } from './app-key.ts';
import { createSettleUp } from './app.ts';
import { bankConnection } from './bank-connection.ts';
import type { SettleUpConfig } from './config.ts';
import type { SessionStore } from './sessions.ts';

/** Settle Up's HTTP server, as `npm run settle-up` (and, later, the demo and tests) start it. */

export interface RunningSettleUp {
  url: string;
  sessions: SessionStore;
  close(): Promise<void>;
}

export function createSettleUpLogger(level = 'info'): Logger {
  return createExampleLogger('settle-up', level);
}

export async function startSettleUp(
  config: SettleUpConfig,
  log: Logger = createSettleUpLogger(),
): Promise<RunningSettleUp> {
  const { privateKey } = await ensureSettleUpKey(config.keyFile);
  const { app, sessions } = createSettleUp(config, bankConnection(config, privateKey), log);
  const server = await listen(app, config.port);
  log.info({ port: server.port, issuer: config.issuer }, 'Settle Up is listening');
  return { url: config.baseUrl, sessions, close: () => server.close() };
}
