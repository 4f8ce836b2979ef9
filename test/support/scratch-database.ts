import { createRunDatabase, dropRunDatabase } from './database.ts';
import { testDatabaseUrl } from './passbook.ts';

/**
 * A database of its own for a test that must own fixed names (the demo customer "demo", the
 * client "budget-buddy"), created on the same server as the run's database and dropped after.
 */
export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createScratchDatabase(): Promise<ScratchDatabase> {
  const admin = new URL(testDatabaseUrl());
  admin.pathname = '/postgres';
  const url = await createRunDatabase(admin.href);
  return { url, drop: () => dropRunDatabase(admin.href, url) };
}
