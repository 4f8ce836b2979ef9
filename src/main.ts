import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { startPassbook } from './start.ts';

/** Entry point: configuration, then everything else; SIGTERM and SIGINT drain and stop. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config);
  const passbook = await startPassbook(config, log);
  const stop = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    await passbook.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`passbook: ${error.message}\n`);
  } else {
    process.stderr.write(`passbook: failed to start: ${(error as Error).message}\n`);
  }
  process.exit(1);
});
