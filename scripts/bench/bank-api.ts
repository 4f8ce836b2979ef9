import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { bankApiDatabaseUrl, provisionBankApiRole } from '../../src/bank-api/database-role.ts';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { listAccounts } from '../../src/bank-api/ledger.ts';
import { createKnex } from '../../src/db/knex.ts';
import type { BenchDatabase } from './database.ts';
import { productionEnv, startBankApi, type ServerProcess } from './processes.ts';
import type { Credentials } from './workloads.ts';

/**
 * The bank API for its end-to-end workload, set up as an operator would: a database role of its
 * own on the run's database (dropped with it), the stand-alone entry point in a process of its
 * own introspecting at Passbook with its own registration, and the demo accounts of the customer
 * whose tokens the workload presents.
 */

export interface BenchBankApi {
  server: ServerProcess;
  /** The customer's accounts, which the token must list as shared to read any transaction. */
  ibans: string[];
}

export interface BankApiSetup {
  database: BenchDatabase;
  /** Passbook's issuer: introspection goes to its /token/introspection. */
  issuer: string;
  resourceServer: Credentials;
  /** Its port, which Passbook was given as BANK_API_URL for the consent screen's account lookup. */
  port: number;
  /** The customer whose token the bank-api workload presents. */
  customerId: string;
  /** The customers who sign in, whose consent screens list their accounts. */
  otherCustomerIds: string[];
  logDir: string;
}

/** The bank API's base URL on this port, as Passbook and the bank API are both told it. */
export function bankApiUrl(port: number): string {
  return `http://127.0.0.1:${port}`;
}

function bankApiEnv(setup: BankApiSetup, port: number, databaseUrl: string): Record<string, string> {
  return {
    ...productionEnv(port),
    BANK_API_URL: bankApiUrl(port),
    ISSUER: setup.issuer,
    CLIENT_ID: setup.resourceServer.clientId,
    CLIENT_SECRET: setup.resourceServer.clientSecret,
    BANK_API_DATABASE_URL: databaseUrl,
    // Its default port may be Passbook's neighbour's; nothing here reads it.
    METRICS_PORT: 'off',
  };
}

async function seedCustomers(databaseUrl: string, customerId: string, others: string[]): Promise<string[]> {
  const knex = createKnex(databaseUrl, 2);
  try {
    for (const id of [customerId, ...others]) await seedDemoAccounts(knex, id);
    return (await listAccounts(knex, customerId)).map((account) => account.iban);
  } finally {
    await knex.destroy();
  }
}

/** Provisions the role, starts the bank API (which applies its migrations) and seeds the customer. */
export async function startBenchBankApi(setup: BankApiSetup): Promise<BenchBankApi> {
  const role = {
    name: `passbook_bench_bank_${randomBytes(4).toString('hex')}`,
    password: randomBytes(24).toString('base64url'),
  };
  setup.database.dropRoleAtEnd(role.name);
  await provisionBankApiRole(setup.database.knex, role);
  const databaseUrl = bankApiDatabaseUrl(setup.database.url, role);
  const logFile = path.join(setup.logDir, 'bank-api.log');
  await writeFile(logFile, '');
  const server = await startBankApi(bankApiEnv(setup, setup.port, databaseUrl), logFile);
  try {
    return { server, ibans: await seedCustomers(databaseUrl, setup.customerId, setup.otherCustomerIds) };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** One request as the workload sends it, answered with the customer's transactions, or why not. */
export async function checkTransactions(bankApi: BenchBankApi, path: string, token: string): Promise<void> {
  const response = await fetch(`${bankApi.server.url}${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  const transactions = response.ok
    ? (JSON.parse(text) as { transactions?: unknown[] }).transactions
    : undefined;
  if (!transactions?.length)
    throw new Error(`the bank API answered ${response.status} without transactions: ${text.slice(0, 200)}`);
}
