import './service/threadpool.ts';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { stopOnSignals } from './service/kit.ts';
import { startPassbook } from './start.ts';

/** Entry point: configuration, then everything else; SIGTERM and SIGINT drain and stop. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config);
  const passbook = await startPassbook(config, log);
  stopOnSignals(
    async (signal) => {
      log.info({ signal }, 'shutting down');
      await passbook.close();
      log.info('stopped');
    },
    (error) => log.error({ err: error }, 'shutdown failed'),
  );
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`passbook: ${error.message}\n`);
  } else {
    process.stderr.write(`passbook: failed to start: ${(error as Error).message}\n`);
  }
  process.exit(1);
});
