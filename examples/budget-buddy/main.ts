import { runFromCommandLine } from '../common/server.ts';
import { BudgetBuddyConfigError, loadBudgetBuddyConfig } from './config.ts';
import { startBudgetBuddy } from './start.ts';

/** `npm run budget-buddy`: the example app on its own, configured from the environment. */
runFromCommandLine({
  name: 'budget-buddy',
  start: (log) => startBudgetBuddy(loadBudgetBuddyConfig(), log),
  isConfigError: (error) => error instanceof BudgetBuddyConfigError,
});
