import { createRunDatabase, startTestDatabaseServer, type TestDatabaseServer } from './database.ts';

declare global {
  var passbookTestDatabase: { server: TestDatabaseServer; url: string } | undefined;
}

/** One database for the whole run; every test file registers its own customers and apps in it. */
export default async function globalSetup(): Promise<void> {
  const server = await startTestDatabaseServer();
  const url = await createRunDatabase(server.adminUrl);
  globalThis.passbookTestDatabase = { server, url };
  // Workers are started after this and inherit the variable.
  process.env.PASSBOOK_TEST_DATABASE_URL = url;
}
