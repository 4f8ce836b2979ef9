import { loadConfig, type Config } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startPassbook, type RunningPassbook } from '../src/start.ts';
import { findCustomerByUsername } from '../src/customers/customers.ts';
import { loadBankApiConfig } from '../src/bank-api/config.ts';
import { seedDemoAccounts } from '../src/bank-api/demo-data.ts';
import { createBankApiLogger, startBankApi } from '../src/bank-api/start.ts';
import { DEMO_CUSTOMER, seedDemo } from '../src/seed/demo.ts';
import { demoClientsFile, ensureDemoClient } from '../src/seed/demo-clients.ts';
import { loadBudgetBuddyConfig } from '../examples/budget-buddy/config.ts';
import { createBudgetBuddyLogger, startBudgetBuddy } from '../examples/budget-buddy/start.ts';

/**
 * The whole story on one machine: Passbook (the bank's authorization server), the bank's API and
 * Budget Buddy (a third-party app), each on its own port and wired to the others only by URLs
 * and client credentials, as they would be in production.
 */

export const BANK_API_CLIENT_ID = 'bank-api';

export interface RunningDemo {
  passbookUrl: string;
  bankApiUrl: string;
  budgetBuddyUrl: string;
  credentialsFile: string;
  signIn: { username: string; password: string };
  close(): Promise<void>;
}

type Env = Record<string, string | undefined>;

export class DemoError extends Error {
  override name = 'DemoError';
}

function readPort(env: Env, name: string, fallback: number): number {
  const raw = env[name] || String(fallback);
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) {
    throw new DemoError(`${name} must be a port number (got ${JSON.stringify(raw)})`);
  }
  return Number(raw);
}

/** Passbook's configuration for the demo: development, the demo seed, quiet logs. */
function passbookConfig(env: Env): Config {
  if (env.NODE_ENV === 'production') throw new DemoError('the demo does not run with NODE_ENV=production');
  return loadConfig({
    ...env,
    NODE_ENV: 'development',
    SEED_DEMO: 'false',
    LOG_LEVEL: env.LOG_LEVEL || 'warn',
  });
}

/** Starts the three services; if one fails to start, those already running are stopped again. */
export async function startDemo(env: Env = process.env): Promise<RunningDemo> {
  const config = passbookConfig(env);
  const bankApiPort = readPort(env, 'BANK_API_PORT', 3001);
  const budgetBuddyPort = readPort(env, 'BUDGET_BUDDY_PORT', 4000);
  const logLevel = config.logLevel;
  const running: { close(): Promise<void> }[] = [];
  const close = async () => {
    for (const service of running.reverse()) await service.close();
  };

  try {
    const passbook: RunningPassbook = await startPassbook(config, createLogger(config));
    running.push(passbook);
    const knex = passbook.database.knex;
    const validate = (metadata: Parameters<typeof passbook.provider.Client.validate>[0]) =>
      passbook.provider.Client.validate(metadata);

    const budgetBuddyUrl = `http://localhost:${budgetBuddyPort}`;
    const bankApiUrl = `http://localhost:${bankApiPort}`;
    const { app } = await seedDemo(knex, validate, config.dataDir, budgetBuddyUrl);
    const customer = await findCustomerByUsername(knex, DEMO_CUSTOMER.username);
    if (!customer) throw new DemoError('the demo customer is missing after seeding');
    await seedDemoAccounts(knex, customer.id);

    // Registered like any app and any resource server: the demo has no back door.
    const resourceServer = await ensureDemoClient(knex, validate, config.dataDir, {
      clientId: BANK_API_CLIENT_ID,
      name: 'Passbook Bank API',
      redirectUris: [],
      isPublic: false,
      isResourceServer: true,
    });

    const bankApiConfig = loadBankApiConfig({
      PORT: String(bankApiPort),
      ISSUER: config.issuer,
      CLIENT_ID: resourceServer.credentials.client_id,
      CLIENT_SECRET: resourceServer.credentials.client_secret,
      LOG_LEVEL: logLevel,
    });
    running.push(await startBankApi(bankApiConfig, { knex, log: createBankApiLogger(logLevel) }));

    const budgetBuddyConfig = loadBudgetBuddyConfig({
      PORT: String(budgetBuddyPort),
      BASE_URL: budgetBuddyUrl,
      OIDC_ISSUER: config.issuer,
      BANK_API_URL: bankApiUrl,
      OIDC_CLIENT_ID: app.client_id,
      OIDC_CLIENT_SECRET: app.client_secret,
    });
    running.push(await startBudgetBuddy(budgetBuddyConfig, createBudgetBuddyLogger(logLevel)));

    return {
      passbookUrl: config.issuer,
      bankApiUrl,
      budgetBuddyUrl,
      credentialsFile: demoClientsFile(config.dataDir),
      signIn: { username: DEMO_CUSTOMER.username, password: DEMO_CUSTOMER.password },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
