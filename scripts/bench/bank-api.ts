import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { bankApiDatabaseUrl, provisionBankApiRole } from '../../src/bank-api/database-role.ts';
import { seedDemoAccounts } from '../../src/bank-api/demo-data.ts';
import { listAccounts } from '../../src/bank-api/ledger.ts';
import { createKnex } from '../../src/db/knex.ts';
import type { BenchDatabase } from './database.ts';
import { freePort } from '../ports.ts';
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
  customerId: string;
  logDir: string;
}

function bankApiEnv(setup: BankApiSetup, port: number, databaseUrl: string): Record<string, string> {
  return {
    ...productionEnv(port),
    BANK_API_URL: `http://127.0.0.1:${port}`,
    ISSUER: setup.issuer,
    CLIENT_ID: setup.resourceServer.clientId,
    CLIENT_SECRET: setup.resourceServer.clientSecret,
    BANK_API_DATABASE_URL: databaseUrl,
    // Its default port may be Passbook's neighbour's; nothing here reads it.
    METRICS_PORT: 'off',
  };
}

async function seedCustomer(databaseUrl: string, customerId: string): Promise<string[]> {
  const knex = createKnex(databaseUrl, 2);
  try {
    await seedDemoAccounts(knex, customerId);
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
  const server = await startBankApi(bankApiEnv(setup, await freePort(), databaseUrl), logFile);
  try {
    return { server, ibans: await seedCustomer(databaseUrl, setup.customerId) };
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
