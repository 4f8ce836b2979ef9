import { BankApiConfigError, loadBankApiConfig } from './config.ts';
import { BankApiRoleError } from './database-role.ts';
import { BankSchemaError } from './migrate.ts';
import { createBankApiLogger, startBankApi } from './start.ts';
import { stopOnSignals } from '../service/kit.ts';

/**
 * Entry point of the stand-alone bank API: `npm run bank-api`. It connects as its own database
 * role (BANK_API_DATABASE_URL) and applies its own migrations; SIGTERM and SIGINT stop it.
 */

const EXPECTED = [BankApiConfigError, BankApiRoleError, BankSchemaError];

async function main(): Promise<void> {
  const config = loadBankApiConfig();
  const log = createBankApiLogger(config.logLevel, process.stdout, config.env);
  const bankApi = await startBankApi(config, { log });
  stopOnSignals(
    async (signal) => {
      log.info({ signal }, 'shutting down');
      await bankApi.close();
      log.info('stopped');
    },
    (error) => log.error({ err: error }, 'shutdown failed'),
  );
}

main().catch((error: unknown) => {
  const expected = EXPECTED.some((type) => error instanceof type);
  const message = expected ? (error as Error).message : `failed to start: ${(error as Error).message}`;
  process.stderr.write(`bank-api: ${message}\n`);
  process.exit(1);
});
