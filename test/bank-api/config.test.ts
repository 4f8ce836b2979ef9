import { BankApiConfigError, loadBankApiConfig, requireDatabaseUrl } from '../../src/bank-api/config.ts';

const REQUIRED = { CLIENT_ID: 'bank-api', CLIENT_SECRET: 'secret' };

test('defaults: port 3001, a local Passbook, its introspection endpoint, a 3 s timeout', () => {
  expect(loadBankApiConfig(REQUIRED)).toEqual({
    port: 3001,
    issuer: 'http://localhost:3000',
    introspectionEndpoint: 'http://localhost:3000/token/introspection',
    clientId: 'bank-api',
    clientSecret: 'secret',
    introspectionTimeoutMs: 3000,
    databaseUrl: undefined,
    logLevel: 'info',
  });
});

test.each([
  [{}, 'CLIENT_ID is required'],
  [{ CLIENT_ID: 'bank-api' }, 'CLIENT_SECRET is required'],
  [{ ...REQUIRED, PORT: 'http' }, 'PORT must be a port number'],
  [{ ...REQUIRED, ISSUER: 'http://bank.example' }, 'ISSUER must use https'],
  [{ ...REQUIRED, ISSUER: 'not a url' }, 'ISSUER must be an http(s) URL'],
  [{ ...REQUIRED, INTROSPECTION_TIMEOUT_MS: '0' }, 'INTROSPECTION_TIMEOUT_MS must be between'],
  [{ ...REQUIRED, DATABASE_URL: 'mysql://db' }, 'DATABASE_URL must be a postgres:// URL'],
])('a bad environment stops start-up with one line naming the variable (%o)', (env, message) => {
  expect(() => loadBankApiConfig(env)).toThrow(BankApiConfigError);
  expect(() => loadBankApiConfig(env)).toThrow(message);
});

test('the stand-alone bank API needs DATABASE_URL', () => {
  expect(() => requireDatabaseUrl(loadBankApiConfig(REQUIRED))).toThrow('DATABASE_URL is required');
  const url = 'postgres://passbook@127.0.0.1/passbook';
  expect(requireDatabaseUrl(loadBankApiConfig({ ...REQUIRED, DATABASE_URL: url }))).toBe(url);
});
