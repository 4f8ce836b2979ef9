import type { Logger } from 'pino';
import { createExampleLogger, serveExample, type RunningExample } from '../common/server.ts';
import { ensureSettleUpKey } from './app-key.ts';
import { createSettleUp } from './app.ts';
import { bankConnection } from './bank-connection.ts';
import type { SettleUpConfig } from './config.ts';
import type { SessionStore } from './sessions.ts';

/** Settle Up's HTTP server, as `npm run settle-up` (and the tests) start it, with its key. */

export type RunningSettleUp = RunningExample<SessionStore>;

export async function startSettleUp(
  config: SettleUpConfig,
  log: Logger = createExampleLogger('settle-up'),
): Promise<RunningSettleUp> {
  const { privateKey } = await ensureSettleUpKey(config.keyFile);
  return serveExample(
    createSettleUp(config, bankConnection(config, privateKey), log),
    config,
    log,
    'Settle Up',
  );
}
