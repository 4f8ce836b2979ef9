import type { Logger } from 'pino';
import { createExampleLogger, listen } from '../common/server.ts';
import { createBudgetBuddy } from './app.ts';
import type { BudgetBuddyConfig } from './config.ts';
import type { SessionStore } from './sessions.ts';

/** Budget Buddy's HTTP server, as `npm run budget-buddy`, the demo and the tests start it. */

export interface RunningBudgetBuddy {
  url: string;
  sessions: SessionStore;
  close(): Promise<void>;
}

export function createBudgetBuddyLogger(level = 'info'): Logger {
  return createExampleLogger('budget-buddy', level);
}

export async function startBudgetBuddy(
  config: BudgetBuddyConfig,
  log: Logger = createBudgetBuddyLogger(),
): Promise<RunningBudgetBuddy> {
  const { app, sessions } = createBudgetBuddy(config, log);
  const server = await listen(app, config.port);
  log.info({ port: server.port, issuer: config.issuer }, 'Budget Buddy is listening');
  return { url: config.baseUrl, sessions, close: () => server.close() };
}
