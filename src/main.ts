import './service/threadpool.ts';
import module from 'node:module';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { stopOnSignals } from './service/kit.ts';
import { startPassbook } from './start.ts';

/** Entry point: configuration, then everything else; SIGTERM and SIGINT drain and stop. */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config);
  const passbook = await startPassbook(config, log);
  // Every module is loaded now: written to the compile cache at once, the next start needs no
  // TypeScript parser even if this process never exits cleanly (docs/operations.md#memory).
  module.flushCompileCache?.();
  stopOnSignals(
    async (signal) => {
      log.info({ signal }, 'shutting down');
      await passbook.close();
      log.info('stopped');
    },
    (error) => log.error({ err: error }, 'shutdown failed'),
  );
}

// Imported rather than started (scripts/compile-cache.ts does so), it only loads its modules.
// Where Node.js leaves import.meta.main undefined (older releases), the entry point starts.
if (import.meta.main !== false)
  main().catch((error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`passbook: ${error.message}\n`);
    } else {
      process.stderr.write(`passbook: failed to start: ${(error as Error).message}\n`);
    }
    process.exit(1);
  });
