import type { Config } from './config.ts';
import { createServiceLogger, type Logger } from './service/kit.ts';

/** Passbook's logger: the services' shared one (src/service/kit.ts), named "passbook". */

export type { Logger };

/** `env` given and `development`, lines on a terminal are printed for a person rather than as JSON. */
export function createLogger(
  config: Pick<Config, 'logLevel'> & Partial<Pick<Config, 'env'>>,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  return createServiceLogger('passbook', config.logLevel, destination, config.env);
}
