import {
  createRunDatabaseWithBankApi,
  startTestDatabaseServer,
  type TestDatabaseServer,
} from './database.ts';

declare global {
  var passbookTestDatabase: { server: TestDatabaseServer; url: string } | undefined;
}

/**
 * One database for the whole run; every test file registers its own customers and apps in it.
 * The bank API reaches it only as its own role, exactly as in production.
 */
export default async function globalSetup(): Promise<void> {
  const server = await startTestDatabaseServer();
  const { url, bankApiUrl } = await createRunDatabaseWithBankApi(server.adminUrl);
  globalThis.passbookTestDatabase = { server, url };
  // Workers are started after this and inherit the variables.
  process.env.PASSBOOK_TEST_DATABASE_URL = url;
  process.env.PASSBOOK_TEST_BANK_API_DATABASE_URL = bankApiUrl;
}
