import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import { pino, type Logger } from 'pino';

/**
 * Running an example app: its logger, its HTTP server, and its command line (`npm run <app>`),
 * which stops cleanly on SIGTERM/SIGINT and tells a configuration mistake from a crash.
 */

export function createExampleLogger(service: string, level = 'info'): Logger {
  // Tokens live only in the server-side sessions: nothing an example app logs carries one.
  return pino({ level, base: { service } });
}

export interface Listening {
  close(): Promise<void>;
}

async function listen(app: Koa, port: number): Promise<Listening & { port: number }> {
  const handle = app.callback();
  // Koa answers a failing request itself, so its promise is not awaited here.
  const server = http.createServer((req, res) => void handle(req, res));
  server.listen(port);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      server.closeIdleConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RunningExample<Sessions> {
  url: string;
  /** The app's in-memory sessions, for inspecting the example (and its tests). */
  sessions: Sessions;
  close(): Promise<void>;
}

interface ServedAt {
  port: number;
  baseUrl: string;
  issuer: string;
}

/** Serves an app built by its factory, and says so in the log. */
export async function serveExample<Sessions>(
  built: { app: Koa; sessions: Sessions },
  at: ServedAt,
  log: Logger,
  name: string,
): Promise<RunningExample<Sessions>> {
  const server = await listen(built.app, at.port);
  log.info({ port: server.port, issuer: at.issuer }, `${name} is listening`);
  return { url: at.baseUrl, sessions: built.sessions, close: () => server.close() };
}

export interface CommandLine {
  /** The command's name in messages, e.g. "budget-buddy". */
  name: string;
  start: (log: Logger) => Promise<Listening>;
  isConfigError: (error: unknown) => boolean;
}

export function runFromCommandLine({ name, start, isConfigError }: CommandLine): void {
  const log = createExampleLogger(name, process.env.LOG_LEVEL || 'info');
  // Started inside a promise, so that a configuration error thrown at once is reported too.
  Promise.resolve(log)
    .then(start)
    .then(
      (running) => {
        // A failed drain is reported, and the process still ends, with a failing exit code.
        const stop = () => {
          running.close().then(
            () => process.exit(0),
            (error: unknown) => {
              log.error({ err: error }, 'shutdown failed');
              process.exit(1);
            },
          );
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      },
      (error: unknown) => {
        const message = isConfigError(error)
          ? (error as Error).message
          : `failed to start: ${(error as Error).message}`;
        process.stderr.write(`${name}: ${message}\n`);
        process.exit(1);
      },
    );
}
