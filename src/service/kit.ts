import type { IncomingMessage, ServerResponse } from 'node:http';
import Router from '@koa/router';
import type Koa from 'koa';
import type { Knex } from 'knex';
import { pino, type Logger } from 'pino';

/**
 * What every one of the bank's services (Passbook, the bank API) does the same way: its logger,
 * its request log and its health route. One copy, so that a fix to what gets logged or redacted
 * reaches every service at once.
 */

export type { Logger };

/**
 * Secrets never belong in a log line; the redaction list is the safety net for the places where
 * a request, a form or an introspection answer could carry one anyway.
 */
const REDACTED_PATHS = [
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

/** Structured JSON logs; every line names its service, so that one log store can hold them all. */
export function createServiceLogger(
  service: string,
  logLevel: string,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  return pino(
    {
      level: logLevel,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { service },
    },
    destination,
  );
}

/**
 * One line per request: method, path, status, time. Never the query (it can carry authorization
 * codes or a misplaced token) and never the headers. The status is read from the raw response,
 * because a handler that writes it directly (oidc-provider does) bypasses Koa's own.
 */
export function requestLog(log: Logger): Koa.Middleware {
  return async (ctx, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const ms = Math.round(performance.now() - started);
      log.info({ method: ctx.method, path: ctx.path, status: ctx.res.statusCode, ms }, 'request');
    }
  };
}

/** GET /healthz: 200 when the service can reach its database; a failed query is the app's error. */
export function healthRouter(knex: Knex): Router {
  const router = new Router();
  router.get('/healthz', async (ctx) => {
    await knex.raw('SELECT 1');
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  return router;
}

/**
 * The service as a handler for node:http. Koa answers a failing request itself (ctx.onerror), so
 * the promise its callback returns has nothing left to report and is deliberately not awaited.
 */
export function requestListener(app: {
  callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = app.callback();
  return (req, res) => void handle(req, res);
}

/**
 * SIGTERM and SIGINT drain the service and end the process; a drain that fails is reported and
 * the process still ends, with a failing exit code.
 */
export function stopOnSignals(
  close: (signal: NodeJS.Signals) => Promise<void>,
  report: (error: unknown) => void,
): void {
  const stop = (signal: NodeJS.Signals) => {
    close(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        report(error);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
