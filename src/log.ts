import { pino, type Logger } from 'pino';
import type { Config } from './config.ts';

export type { Logger };

/**
 * Structured JSON logs. Secrets never belong in a log line; the redaction list is the safety
 * net for the places where a request or a form could carry one anyway.
 */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'client_secret',
  '*.client_secret',
  'code',
  '*.code',
  'code_verifier',
  '*.code_verifier',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'id_token',
  '*.id_token',
  'token',
  '*.token',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export function createLogger(
  config: Pick<Config, 'logLevel'>,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  return pino(
    {
      level: config.logLevel,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { service: 'passbook' },
    },
    destination,
  );
}
