import { loadBankApiConfig, BankApiConfigError } from '../../src/bank-api/config.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';

/** METRICS_PORT and METRICS_HOST, as both services read them. */

const BANK_API = { CLIENT_ID: 'bank-api', CLIENT_SECRET: 'secret' };

test('Passbook listens on 127.0.0.1:9464 by default, on a free port in tests', () => {
  expect(loadConfig({ NODE_ENV: 'development' }).metrics).toEqual({ host: '127.0.0.1', port: 9464 });
  expect(loadConfig({ NODE_ENV: 'test' }).metrics).toEqual({ host: '127.0.0.1', port: 0 });
});

test('the bank API listens on 127.0.0.1:9465 by default', () => {
  expect(loadBankApiConfig(BANK_API).metrics).toEqual({ host: '127.0.0.1', port: 9465 });
});

test('METRICS_HOST and METRICS_PORT move the listener; off turns it off', () => {
  expect(loadConfig({ METRICS_HOST: '0.0.0.0', METRICS_PORT: '9100' }).metrics).toEqual({
    host: '0.0.0.0',
    port: 9100,
  });
  expect(loadConfig({ METRICS_HOST: '[::1]' }).metrics?.host).toBe('::1');
  expect(loadConfig({ METRICS_PORT: 'off' }).metrics).toBeUndefined();
  expect(loadBankApiConfig({ ...BANK_API, METRICS_PORT: 'off' }).metrics).toBeUndefined();
});

test('a bad value stops start-up with one line naming it', () => {
  expect(() => loadConfig({ METRICS_PORT: '70000' })).toThrow(ConfigError);
  expect(() => loadConfig({ METRICS_PORT: 'nine' })).toThrow(/^METRICS_PORT must be a port number or off/);
  expect(() => loadConfig({ METRICS_HOST: 'http://example' })).toThrow(/^METRICS_HOST must be/);
  expect(() => loadBankApiConfig({ ...BANK_API, METRICS_PORT: '-1' })).toThrow(BankApiConfigError);
});
