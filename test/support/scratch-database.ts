import { createRunDatabaseWithBankApi, dropRunDatabase } from './database.ts';
import { testDatabaseUrl } from './passbook.ts';

/**
 * A database of its own for a test that must own fixed names (the demo customer "demo", the
 * client "budget-buddy"), created on the same server as the run's database and dropped after.
 */
export interface ScratchDatabase {
  url: string;
  /** The bank API's own role on this database (its schema `bank` and nothing else). */
  bankApiUrl: string;
  drop(): Promise<void>;
}

export async function createScratchDatabase(): Promise<ScratchDatabase> {
  const admin = new URL(testDatabaseUrl());
  admin.pathname = '/postgres';
  const { url, bankApiUrl } = await createRunDatabaseWithBankApi(admin.href);
  return { url, bankApiUrl, drop: () => dropRunDatabase(admin.href, url) };
}
