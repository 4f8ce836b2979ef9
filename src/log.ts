import type { Config } from './config.ts';
import { createServiceLogger, type Logger } from './service/kit.ts';

/** Passbook's logger: the services' shared one (src/service/kit.ts), named "passbook". */

export type { Logger };

export function createLogger(
  config: Pick<Config, 'logLevel'>,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  return createServiceLogger('passbook', config.logLevel, destination);
}
