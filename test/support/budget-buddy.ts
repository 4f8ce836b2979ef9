import type { RegisteredClient } from '../../src/clients/clients.ts';
import { SCOPE } from '../../examples/budget-buddy/bank-connection.ts';
import { loadBudgetBuddyConfig } from '../../examples/budget-buddy/config.ts';
import {
  createBudgetBuddyLogger,
  startBudgetBuddy,
  type RunningBudgetBuddy,
} from '../../examples/budget-buddy/start.ts';
import { registerTestApp, type TestPassbook } from './passbook.ts';
import { freePort } from '../../scripts/ports.ts';

/**
 * Budget Buddy as a developer runs it: on its own port (on "localhost", a different host from
 * the bank's 127.0.0.1, so the two never share cookies), registered at Passbook like any app.
 */

export interface TestBudgetBuddy extends RunningBudgetBuddy {
  client: RegisteredClient;
}

export async function startTestBudgetBuddy(
  passbook: TestPassbook,
  bankApiUrl: string,
): Promise<TestBudgetBuddy> {
  const port = await freePort();
  const baseUrl = `http://localhost:${port}`;
  const client = await registerTestApp(passbook, {
    name: 'Budget Buddy',
    redirectUris: [`${baseUrl}/callback`],
    scope: SCOPE,
  });
  const config = loadBudgetBuddyConfig({
    PORT: String(port),
    BASE_URL: baseUrl,
    OIDC_ISSUER: passbook.issuer,
    BANK_API_URL: bankApiUrl,
    OIDC_CLIENT_ID: client.client_id,
    OIDC_CLIENT_SECRET: client.client_secret,
  });
  const running = await startBudgetBuddy(config, createBudgetBuddyLogger(process.env.LOG_LEVEL || 'silent'));
  return { ...running, client };
}

/** The tokens Budget Buddy holds for its one connected session. */
export function connectedTokens(budgetBuddy: RunningBudgetBuddy) {
  const connected = budgetBuddy.sessions.list().filter((session) => session.connection);
  if (connected.length !== 1 || !connected[0]?.connection) {
    throw new Error(`expected one connected session, found ${connected.length}`);
  }
  return connected[0].connection;
}
