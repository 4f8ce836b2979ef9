import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import Router from '@koa/router';
import type Koa from 'koa';
import type { Knex } from 'knex';
import { pino, type Logger } from 'pino';

/**
 * What every one of the bank's services (Passbook, the bank API) does the same way: its logger,
 * its request log and request ids, its health routes and its shutdown. One copy, so that a fix to
 * what gets logged or redacted, or to how a service drains, reaches every service at once.
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

/** The request being handled, for every log line written on its behalf, however deep. */
const currentRequestId = new AsyncLocalStorage<string>();

/**
 * Structured JSON logs; every line names its service, so that one log store can hold them all,
 * and every line written while a request is handled (provider events, audit failures) names the
 * request. In development, on a terminal, lines are printed for a person instead; never elsewhere,
 * so production logs are always JSON.
 */
export function createServiceLogger(
  service: string,
  logLevel: string,
  destination: NodeJS.WritableStream = process.stdout,
  environment?: string,
): Logger {
  const terminal = 'isTTY' in destination && destination.isTTY === true;
  return pino(
    {
      level: logLevel,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { service },
      mixin: () => {
        const requestId = currentRequestId.getStore();
        return requestId === undefined ? {} : { requestId };
      },
    },
    environment === 'development' && terminal ? readableLines(destination) : destination,
  );
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function shown(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** `12:04:05.123 INFO  passbook [request id] message key=value …`, then an error's stack. */
function readableLine(line: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return line;
  }
  if (!isRecord(parsed)) return line;
  const { time, level, service, requestId, msg, err, ...rest } = parsed;
  const parts = [
    typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '',
    (typeof level === 'number' ? (LEVEL_NAMES[level] ?? String(level)) : shown(level)).padEnd(5),
    shown(service),
    requestId === undefined ? '' : `[${shown(requestId)}]`,
    msg === undefined ? '' : shown(msg),
    ...Object.entries(rest).map(([key, value]) => `${key}=${shown(value)}`),
  ];
  const text = parts.filter((part) => part !== '').join(' ');
  const stack = isRecord(err) && typeof err.stack === 'string' ? err.stack : undefined;
  return stack ? `${text}\n    ${stack.replaceAll('\n', '\n    ')}` : text;
}

/** pino writes one JSON line per call; this prints each for a person, on the same terminal. */
function readableLines(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      for (const line of String(chunk).split('\n')) {
        if (line !== '') out.write(`${readableLine(line)}\n`);
      }
      done();
    },
  });
}

/**
 * What a caller may name its request with: a proxy's or load balancer's id, short and plain, so
 * that it can go into a log line and a response header as it is.
 */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._~:+/=-]{1,128}$/;

/**
 * One line per request: method, path, status, time. Never the query (it can carry authorization
 * codes or a misplaced token) and never the headers. The status is read from the raw response,
 * because a handler that writes it directly (oidc-provider does) bypasses Koa's own.
 *
 * Every request gets an id, echoed in `X-Request-Id` and carried by every log line written while
 * it runs. An incoming `X-Request-Id` is kept only when the app trusts its proxy (Koa's `proxy`,
 * TRUST_PROXY), as for `X-Forwarded-*`: from anyone else it could be forged to tie a request to
 * another's log lines.
 */
export function requestLog(log: Logger): Koa.Middleware {
  return async (ctx, next) => {
    const offered = ctx.app.proxy ? ctx.get('x-request-id') : '';
    const requestId = SAFE_REQUEST_ID.test(offered) ? offered : randomUUID();
    ctx.set('X-Request-Id', requestId);
    await currentRequestId.run(requestId, async () => {
      const started = performance.now();
      try {
        await next();
      } finally {
        const ms = Math.round(performance.now() - started);
        log.info({ method: ctx.method, path: ctx.path, status: ctx.res.statusCode, ms }, 'request');
      }
    });
  };
}

/** One thing a service needs before it can serve: resolves when ready, throws (or hangs) when not. */
export type ReadinessCheck = () => Promise<void>;

/** A check that hangs (a pool waiting for a database that does not answer) counts as failed. */
const READINESS_CHECK_TIMEOUT_MS = 2000;

async function passes(check: ReadinessCheck, name: string, log: Logger): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${READINESS_CHECK_TIMEOUT_MS} ms`)),
      READINESS_CHECK_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([check(), timeout]);
    return true;
  } catch (error) {
    log.warn({ err: error, check: name }, 'readiness check failed');
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export interface ServiceHealth {
  /** GET /livez, /readyz, and /healthz (the same answer as /readyz). */
  router: Router;
  /** From now on /readyz answers 503, so that load balancers send new requests elsewhere. */
  startDraining(): void;
}

/** The check every service has: its pool can run a query. */
export function databaseCheck(knex: Knex): ReadinessCheck {
  return async () => {
    await knex.raw('SELECT 1');
  };
}

/**
 * `/livez`: the process is up and its event loop turns; it checks nothing else, so that an
 * orchestrator never restarts a healthy process because its database is down. `/readyz`: 200 only
 * when every check passes and the service is not shutting down; else 503, naming the checks that
 * failed (never why: that goes to the log). `/healthz` stays, answering what `/readyz` does.
 */
export function serviceHealth(checks: Record<string, ReadinessCheck>, log: Logger): ServiceHealth {
  let draining = false;
  const router = new Router();
  router.get('/livez', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get(['/readyz', '/healthz'], async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (draining) {
      ctx.status = 503;
      ctx.body = { status: 'draining' };
      return;
    }
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => [name, await passes(check, name, log)] as const),
    );
    const ready = results.every(([, ok]) => ok);
    ctx.status = ready ? 200 : 503;
    ctx.body = {
      status: ready ? 'ok' : 'unavailable',
      checks: Object.fromEntries(results.map(([name, ok]) => [name, ok ? 'ok' : 'failed'])),
    };
  });
  return {
    router,
    startDraining() {
      draining = true;
    },
  };
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
 * Stops accepting connections and lets the requests in flight finish, for up to `timeoutMs`;
 * then closes whatever connections remain. Resolves once the server is closed; `forced` says
 * whether requests were cut off.
 */
export async function closeServer(server: Server, timeoutMs: number): Promise<{ forced: boolean }> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // A keep-alive connection whose request ends during the drain turns idle and would otherwise
  // hold close() open until its client lets go.
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), timeoutMs);
  });
  try {
    const forced = (await Promise.race([closed, deadline])) === 'deadline';
    if (forced) {
      server.closeAllConnections();
      await closed;
    }
    return { forced };
  } finally {
    clearInterval(sweep);
    clearTimeout(timer);
  }
}

/**
 * Waits for `work` until `deadline` (a Date.now() value), and at least `floorMs`; says whether it
 * finished. What is left of a shutdown after its deadline (a query cut off mid-request still
 * holding a pooled connection until its statement timeout) is abandoned to the process's exit.
 */
export async function finishesBy(work: Promise<unknown>, deadline: number, floorMs = 1000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(deadline - Date.now(), floorMs));
  });
  const finished = work.then(() => true);
  // A failure after the deadline has nobody left to report to.
  finished.catch(() => {});
  try {
    return await Promise.race([finished, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * SIGTERM and SIGINT drain the service and end the process with 0; a drain that fails is reported
 * and the process still ends, with 1. A second signal during the drain ends it at once, with 1:
 * the operator has decided not to wait.
 */
export function stopOnSignals(
  close: (signal: NodeJS.Signals) => Promise<void>,
  report: (error: unknown) => void,
): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      report(new Error(`${signal} during shutdown: exiting without finishing the drain`));
      process.exit(1);
    }
    stopping = true;
    close(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        report(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
