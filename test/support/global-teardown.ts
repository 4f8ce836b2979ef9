import { dropRunDatabase, stopTestDatabaseServer } from './database.ts';

/** Drops the run's database and its roles, then stops the server. */
export default async function globalTeardown(): Promise<void> {
  const run = globalThis.passbookTestDatabase;
  if (!run) return;
  try {
    await dropRunDatabase(run.server.adminUrl, run.url);
  } finally {
    await stopTestDatabaseServer(run.server);
  }
}
