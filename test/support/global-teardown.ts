import { dropRunDatabase, stopTestDatabaseServer } from './database.ts';

export default async function globalTeardown(): Promise<void> {
  const run = globalThis.passbookTestDatabase;
  if (!run) return;
  await dropRunDatabase(run.server.adminUrl, run.url);
  await stopTestDatabaseServer(run.server);
}
