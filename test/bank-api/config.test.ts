import { BankApiConfigError, loadBankApiConfig, requireDatabaseUrl } from '../../src/bank-api/config.ts';

const REQUIRED = { CLIENT_ID: 'bank-api', CLIENT_SECRET: 'secret' };

test('defaults: port 3001 at localhost, a local Passbook, its introspection endpoint, a 3 s timeout, metrics on 9465, a 10 s drain', () => {
  expect(loadBankApiConfig(REQUIRED)).toEqual({
    port: 3001,
    publicUrl: 'http://localhost:3001',
    issuer: 'http://localhost:3000',
    introspectionEndpoint: 'http://localhost:3000/token/introspection',
    clientId: 'bank-api',
    clientSecret: 'secret',
    introspectionTimeoutMs: 3000,
    databaseUrl: undefined,
    databaseTimeouts: { statementMs: 3000, connectMs: 2000, acquireMs: 3000 },
    logLevel: 'info',
    metrics: { host: '127.0.0.1', port: 9465 },
    env: 'development',
    trustProxy: false,
    shutdownTimeoutSeconds: 10,
  });
});

test.each([
  [{}, 'CLIENT_ID is required'],
  [{ CLIENT_ID: 'bank-api' }, 'CLIENT_SECRET is required'],
  [{ ...REQUIRED, PORT: 'http' }, 'PORT must be a port number'],
  [{ ...REQUIRED, DATABASE_ACQUIRE_TIMEOUT_MS: 'soon' }, 'DATABASE_ACQUIRE_TIMEOUT_MS must be'],
  [{ ...REQUIRED, ISSUER: 'http://bank.example' }, 'ISSUER must use https'],
  [{ ...REQUIRED, ISSUER: 'not a url' }, 'ISSUER must be an http(s) URL'],
  [{ ...REQUIRED, INTROSPECTION_TIMEOUT_MS: '0' }, 'INTROSPECTION_TIMEOUT_MS must be between'],
  [{ ...REQUIRED, BANK_API_DATABASE_URL: 'mysql://db' }, 'BANK_API_DATABASE_URL must be a postgres:// URL'],
  [{ ...REQUIRED, SHUTDOWN_TIMEOUT: '601' }, 'SHUTDOWN_TIMEOUT must be between 0 and 600'],
  [{ ...REQUIRED, SHUTDOWN_TIMEOUT: 'soon' }, 'SHUTDOWN_TIMEOUT must be between 0 and 600'],
  [{ ...REQUIRED, TRUST_PROXY: 'yes' }, 'TRUST_PROXY must be true or false'],
])('a bad environment stops start-up with one line naming the variable (%o)', (env, message) => {
  expect(() => loadBankApiConfig(env)).toThrow(BankApiConfigError);
  expect(() => loadBankApiConfig(env)).toThrow(message);
});

test('the bank API needs BANK_API_DATABASE_URL, its own role', () => {
  expect(() => requireDatabaseUrl(loadBankApiConfig(REQUIRED))).toThrow('BANK_API_DATABASE_URL is required');
  const url = 'postgres://bank_api:secret@127.0.0.1/passbook';
  expect(requireDatabaseUrl(loadBankApiConfig({ ...REQUIRED, BANK_API_DATABASE_URL: url }))).toBe(url);
});

test("Passbook's DATABASE_URL is never used in its place, so the bank API cannot fall back to Passbook's role", () => {
  const passbooks = { ...REQUIRED, DATABASE_URL: 'postgres://passbook:secret@127.0.0.1/passbook' };
  expect(loadBankApiConfig(passbooks).databaseUrl).toBeUndefined();
  expect(() => requireDatabaseUrl(loadBankApiConfig(passbooks))).toThrow("not Passbook's DATABASE_URL");
  const both = { ...passbooks, BANK_API_DATABASE_URL: 'postgres://bank_api:secret@127.0.0.1/passbook' };
  expect(loadBankApiConfig(both).databaseUrl).toBe(both.BANK_API_DATABASE_URL);
});
