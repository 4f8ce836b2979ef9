import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { createBudgetBuddy } from './app.ts';
import type { BudgetBuddyConfig } from './config.ts';
import type { SessionStore } from './sessions.ts';

export interface RunningBudgetBuddy {
  url: string;
  sessions: SessionStore;
  close(): Promise<void>;
}

export function createBudgetBuddyLogger(level = 'info'): Logger {
  // Tokens live only in the session store: nothing the app logs carries one.
  return pino({ level, base: { service: 'budget-buddy' } });
}

export async function startBudgetBuddy(
  config: BudgetBuddyConfig,
  log: Logger = createBudgetBuddyLogger(),
): Promise<RunningBudgetBuddy> {
  const { app, sessions } = createBudgetBuddy(config, log);
  const handle = app.callback();
  // Koa answers a failing request itself, so its promise is not awaited here.
  const server = http.createServer((req, res) => void handle(req, res));
  server.listen(config.port);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  log.info({ port, issuer: config.issuer }, 'Budget Buddy is listening');
  return {
    url: config.baseUrl,
    sessions,
    async close() {
      server.closeIdleConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
