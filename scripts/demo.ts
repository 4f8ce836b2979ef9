import { ConfigError } from '../src/config.ts';
import { BankApiConfigError } from '../src/bank-api/config.ts';
import { BankApiRoleError } from '../src/bank-api/database-role.ts';
import { BudgetBuddyConfigError } from '../examples/budget-buddy/config.ts';
import { SettleUpConfigError } from '../examples/settle-up/config.ts';
import { SettleUpKeyError } from '../examples/settle-up/app-key.ts';
import { stopOnSignals } from '../src/service/kit.ts';
import { DemoError, startDemo, type RunningDemo } from './demo-stack.ts';

/** `npm run demo`: Passbook, the bank's API, Budget Buddy and Settle Up together, then the way in. */

function banner(demo: RunningDemo): string {
  return [
    '',
    'The Passbook demo is running.',
    '',
    `  Budget Buddy (the app)        ${demo.budgetBuddyUrl}   <- start here`,
    `  Settle Up (an app that pays)  ${demo.settleUpUrl}`,
    `  Passbook (the bank's sign-in) ${demo.passbookUrl}`,
    `  Bank API                      ${demo.bankApiUrl}`,
    '',
    `  Sign in at the bank as "${demo.signIn.username}" with password "${demo.signIn.password}".`,
    `  Or as "${demo.twoStep.username}" with password "${demo.twoStep.password}" and a code from an`,
    '  authenticator app, after adding this key to it (the same on every start; kept in',
    `  ${demo.twoStep.file}):`,
    `      ${demo.twoStep.secret}`,
    `      ${demo.twoStep.otpauthUri}`,
    `  The apps' client credentials are in ${demo.credentialsFile}.`,
    '',
    '  Press Ctrl-C to stop.',
    '',
  ].join('\n');
}

const EXPECTED = [
  ConfigError,
  BankApiConfigError,
  BankApiRoleError,
  BudgetBuddyConfigError,
  SettleUpConfigError,
  SettleUpKeyError,
  DemoError,
];

async function main(): Promise<void> {
  const demo = await startDemo();
  process.stdout.write(`${banner(demo)}\n`);
  stopOnSignals(
    async () => {
      process.stdout.write('Stopping the demo…\n');
      await demo.close();
    },
    (error) => {
      process.stderr.write(
        `demo: stopping failed: ${error instanceof Error ? error.message : String(error)}\n`,
      );
    },
  );
}

main().catch((error: unknown) => {
  const { message, code } = error as Error & { code?: string; port?: number };
  const reason =
    code === 'EADDRINUSE'
      ? `a port is already in use (${message}); stop what uses it or set PORT, BANK_API_PORT, BUDGET_BUDDY_PORT, SETTLE_UP_PORT`
      : message;
  const expected = EXPECTED.some((type) => error instanceof type);
  process.stderr.write(`demo: ${expected ? reason : `failed to start: ${reason}`}\n`);
  process.exit(1);
});
