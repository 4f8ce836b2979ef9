import type { Logger } from 'pino';
import { createExampleLogger, serveExample, type RunningExample } from '../common/server.ts';
import { createBudgetBuddy } from './app.ts';
import type { BudgetBuddyConfig } from './config.ts';
import type { SessionStore } from './sessions.ts';

/** Budget Buddy's HTTP server, as `npm run budget-buddy`, the demo and the tests start it. */

export type RunningBudgetBuddy = RunningExample<SessionStore>;

export function createBudgetBuddyLogger(level = 'info'): Logger {
  return createExampleLogger('budget-buddy', level);
}

export function startBudgetBuddy(
  config: BudgetBuddyConfig,
  log: Logger = createBudgetBuddyLogger(),
): Promise<RunningBudgetBuddy> {
  return serveExample(createBudgetBuddy(config, log), config, log, 'Budget Buddy');
}
