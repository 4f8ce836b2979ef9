import { BudgetBuddyConfigError, loadBudgetBuddyConfig } from './config.ts';
import { createBudgetBuddyLogger, startBudgetBuddy } from './start.ts';

/** `npm run budget-buddy`: the example app on its own, configured from the environment. */
async function main(): Promise<void> {
  const config = loadBudgetBuddyConfig();
  const log = createBudgetBuddyLogger(process.env.LOG_LEVEL || 'info');
  const budgetBuddy = await startBudgetBuddy(config, log);
  // A failed drain is reported, and the process still ends, with a failing exit code.
  const stop = () => {
    budgetBuddy.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  const message =
    error instanceof BudgetBuddyConfigError ? error.message : `failed to start: ${(error as Error).message}`;
  process.stderr.write(`budget-buddy: ${message}\n`);
  process.exit(1);
});
