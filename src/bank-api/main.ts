import { migrate } from '../db/migrate.ts';
import { createKnex } from '../db/knex.ts';
import { BankApiConfigError, loadBankApiConfig, requireDatabaseUrl } from './config.ts';
import { createBankApiLogger, startBankApi } from './start.ts';

/** Entry point of the stand-alone bank API: `npm run bank-api`. SIGTERM and SIGINT stop it. */
async function main(): Promise<void> {
  const config = loadBankApiConfig();
  const log = createBankApiLogger(config.logLevel);
  const knex = createKnex(requireDatabaseUrl(config));
  // Its tables come with Passbook's migrations; applying them here lets it start first.
  await migrate(knex);
  const bankApi = await startBankApi(config, { knex, log });
  const stop = async () => {
    await bankApi.close();
    await knex.destroy();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  const message =
    error instanceof BankApiConfigError ? error.message : `failed to start: ${(error as Error).message}`;
  process.stderr.write(`bank-api: ${message}\n`);
  process.exit(1);
});
