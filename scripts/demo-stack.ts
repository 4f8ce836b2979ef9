import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '../src/config.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import type { Knex } from '../src/db/knex.ts';
import { createLogger } from '../src/log.ts';
import { startPassbook, type RunningPassbook } from '../src/start.ts';
import { findCustomerByUsername } from '../src/customers/customers.ts';
import { loadBankApiConfig } from '../src/bank-api/config.ts';
import { bankApiDatabaseUrl, provisionBankApiRole, type BankApiRole } from '../src/bank-api/database-role.ts';
import { seedDemoAccounts } from '../src/bank-api/demo-data.ts';
import { createBankApiLogger, startBankApi } from '../src/bank-api/start.ts';
import { DEMO_CUSTOMER, seedDemo } from '../src/seed/demo.ts';
import type { DemoTwoStep } from '../src/seed/demo-two-step.ts';
import { demoClientsFile, ensureDemoClient } from '../src/seed/demo-clients.ts';
import { loadBudgetBuddyConfig } from '../examples/budget-buddy/config.ts';
import { createBudgetBuddyLogger, startBudgetBuddy } from '../examples/budget-buddy/start.ts';

/**
 * The whole story on one machine: Passbook (the bank's authorization server), the bank's API and
 * Budget Buddy (a third-party app), each on its own port and wired to the others only by URLs
 * and client credentials, as they would be in production. Passbook and the bank API share one
 * PostgreSQL database but not a role: the bank API logs in as its own, which owns the schema
 * `bank` and can read nothing of Passbook's.
 */

export const BANK_API_CLIENT_ID = 'bank-api';

export interface RunningDemo {
  passbookUrl: string;
  bankApiUrl: string;
  budgetBuddyUrl: string;
  credentialsFile: string;
  signIn: { username: string; password: string };
  /** The second demo customer, with two-step verification on, and its authenticator secret. */
  twoStep: DemoTwoStep;
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
    // Passbook asks the demo's own bank API which accounts the customer has, wherever it listens.
    BANK_API_URL: env.BANK_API_URL || `http://localhost:${readPort(env, 'BANK_API_PORT', 3001)}`,
    NODE_ENV: 'development',
    SEED_DEMO: 'false',
    LOG_LEVEL: env.LOG_LEVEL || 'warn',
  });
}

/**
 * The bank API's role for the demo. Roles belong to the whole server, not to one database, so by
 * default the name follows the database's ("passbook" gives "passbook_bank_api"), and two demo
 * databases on one server do not share one; DEMO_BANK_API_ROLE names it outright.
 * The password is new on every start: nothing but this process needs it, so nothing keeps it.
 */
async function demoBankApiRole(knex: Knex, env: Env): Promise<BankApiRole> {
  const password = randomBytes(24).toString('base64url');
  if (env.DEMO_BANK_API_ROLE) return { name: env.DEMO_BANK_API_ROLE, password };
  const { rows } = await knex.raw<{ rows: { database: string }[] }>('SELECT current_database() AS database');
  const database = (rows[0]?.database ?? 'passbook').toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return { name: `${database.slice(0, 54)}_bank_api`, password };
}

/** Starts the three services; if one fails to start, those already running are stopped again. */
export async function startDemo(env: Env = process.env): Promise<RunningDemo> {
  const passbookSettings = passbookConfig(env);
  const bankApiPort = readPort(env, 'BANK_API_PORT', 3001);
  const budgetBuddyPort = readPort(env, 'BUDGET_BUDDY_PORT', 4000);
  const logLevel = passbookSettings.logLevel;
  const running: { close(): Promise<void> }[] = [];
  const close = async () => {
    for (const service of running.reverse()) await service.close();
  };

  try {
    // The demo owns the embedded database (when there is no DATABASE_URL) rather than Passbook,
    // because the bank API needs its address too, with its own role in it.
    let databaseUrl = passbookSettings.databaseUrl;
    if (!databaseUrl) {
      const embedded = await startEmbeddedPostgres(
        passbookSettings.dataDir,
        passbookSettings.embeddedPostgresPort,
        createLogger(passbookSettings),
      );
      running.push({ close: () => embedded.stop() });
      databaseUrl = embedded.url;
    }
    const config: Config = { ...passbookSettings, databaseUrl };
    const passbook: RunningPassbook = await startPassbook(config, createLogger(config));
    running.push(passbook);
    const knex = passbook.database.knex;
    const validate = (metadata: Parameters<typeof passbook.provider.Client.validate>[0]) =>
      passbook.provider.Client.validate(metadata);

    const budgetBuddyUrl = `http://localhost:${budgetBuddyPort}`;
    const bankApiUrl = `http://localhost:${bankApiPort}`;
    const { app, twoStep } = await seedDemo(knex, validate, passbook.cipher, config.dataDir, budgetBuddyUrl);
    const customer = await findCustomerByUsername(knex, DEMO_CUSTOMER.username);
    if (!customer) throw new DemoError('the demo customer is missing after seeding');

    // Registered like any app and any resource server: the demo has no back door.
    const resourceServer = await ensureDemoClient(knex, validate, config.dataDir, {
      clientId: BANK_API_CLIENT_ID,
      name: 'Passbook Bank API',
      redirectUris: [],
      isPublic: false,
      isResourceServer: true,
    });

    // Passbook's connection is the admin one here: the embedded database's superuser, or the
    // developer's DATABASE_URL, which must then be allowed to create roles and schemas.
    const bankApiRole = await demoBankApiRole(knex, env);
    await provisionBankApiRole(knex, bankApiRole).catch((error: unknown) => {
      if ((error as { code?: string }).code !== '42501') throw error;
      throw new DemoError(
        `DATABASE_URL's role may not create the bank API's role "${bankApiRole.name}" (${(error as Error).message}): use a superuser for the demo, or the embedded database`,
      );
    });
    const bankApiConfig = loadBankApiConfig({
      PORT: String(bankApiPort),
      ISSUER: config.issuer,
      CLIENT_ID: resourceServer.credentials.client_id,
      CLIENT_SECRET: resourceServer.credentials.client_secret,
      BANK_API_DATABASE_URL: bankApiDatabaseUrl(databaseUrl, bankApiRole),
      LOG_LEVEL: logLevel,
      METRICS_PORT: env.BANK_API_METRICS_PORT,
    });
    const bankApi = await startBankApi(bankApiConfig, {
      log: createBankApiLogger(logLevel, process.stdout, config.env),
    });
    running.push(bankApi);
    // Keyed by the demo customer's id, which is the `sub` the bank API will see in introspection.
    await seedDemoAccounts(bankApi.knex, customer.id);
    const secondCustomer = await findCustomerByUsername(knex, twoStep.username);
    if (secondCustomer) await seedDemoAccounts(bankApi.knex, secondCustomer.id);

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
      twoStep,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
