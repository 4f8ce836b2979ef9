import { spawn } from 'node:child_process';
import { ConfigError, loadConfig } from '../src/config.ts';
import { PROJECT_ROOT } from './support/project.ts';

const DAY = 24 * 60 * 60;
const KEY = 'k'.repeat(32);
const DATA_KEY = Buffer.alloc(32, 1).toString('base64url');
const PRODUCTION = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://bank@db.internal/passbook',
  COOKIE_KEYS: KEY,
  DATA_ENCRYPTION_KEY: DATA_KEY,
};

/** The ConfigError loadConfig throws for `env`; fails the test if it throws nothing or something else. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

function expectOneLineNaming(error: ConfigError, variable: string): void {
  expect(error.message).toContain(variable);
  expect(error.message).not.toMatch(/[\r\n]/);
}

describe('defaults', () => {
  test('port 3000 and issuer http://localhost:3000', () => {
    const config = loadConfig({});
    expect(config.port).toBe(3000);
    expect(config.issuer).toBe('http://localhost:3000');
    expect(config.env).toBe('development');
    expect(config.trustProxy).toBe(false);
  });

  test('lifetimes: access token 600 s, code 60 s, refresh 30 days, refresh max 1 year, session 12 h', () => {
    expect(loadConfig({}).lifetimes).toMatchObject({
      accessToken: 600,
      authorizationCode: 60,
      refreshToken: 30 * DAY,
      refreshTokenMaxAge: 365 * DAY,
      sessionMaxAge: 12 * 60 * 60,
    });
  });

  test('signing keys: re-read every 60 s, a rotated key signs after an hour', () => {
    const config = loadConfig({});
    expect(config.keyRefreshIntervalSeconds).toBe(60);
    expect(config.keyActivationDelaySeconds).toBe(3600);
    expect(loadConfig({ KEY_REFRESH_INTERVAL: '5', KEY_ACTIVATION_DELAY: '0' })).toMatchObject({
      keyRefreshIntervalSeconds: 5,
      keyActivationDelaySeconds: 0,
    });
  });

  test('a shutdown waits 10 s for requests in flight; SHUTDOWN_TIMEOUT changes it', () => {
    expect(loadConfig({}).shutdownTimeoutSeconds).toBe(10);
    expect(loadConfig({ SHUTDOWN_TIMEOUT: '30' }).shutdownTimeoutSeconds).toBe(30);
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT: '601' })).toThrow(/SHUTDOWN_TIMEOUT/);
  });

  test('the database: 3 s per statement, 2 s to connect, 3 s for a pooled connection; each can be changed', () => {
    expect(loadConfig({}).databaseTimeouts).toEqual({ statementMs: 3000, connectMs: 2000, acquireMs: 3000 });
    expect(
      loadConfig({
        DATABASE_STATEMENT_TIMEOUT_MS: '10000',
        DATABASE_CONNECT_TIMEOUT_MS: '500',
        DATABASE_ACQUIRE_TIMEOUT_MS: '1500',
      }).databaseTimeouts,
    ).toEqual({ statementMs: 10000, connectMs: 500, acquireMs: 1500 });
  });

  test('nothing reads process.env when an env is passed', () => {
    const previous = process.env.PORT;
    process.env.PORT = '4567';
    try {
      expect(loadConfig({}).port).toBe(3000);
    } finally {
      if (previous === undefined) delete process.env.PORT;
      else process.env.PORT = previous;
    }
  });
});

test('a payment may ask for 10000.00 at most by default; PAYMENT_MAX_AMOUNT changes it', () => {
  expect(loadConfig({}).paymentMaxAmount).toBe('10000.00');
  expect(loadConfig({ PAYMENT_MAX_AMOUNT: '250.00' }).paymentMaxAmount).toBe('250.00');
  expect(loadConfig({ PAYMENT_MAX_AMOUNT: '0.50' }).paymentMaxAmount).toBe('0.50');
});

describe('overrides', () => {
  test('PORT sets the port and the default issuer follows it', () => {
    const config = loadConfig({ PORT: '8080' });
    expect(config.port).toBe(8080);
    expect(config.issuer).toBe('http://localhost:8080');
  });

  test('ISSUER overrides the issuer, without a trailing slash', () => {
    expect(loadConfig({ ISSUER: 'https://login.bank.example/' }).issuer).toBe('https://login.bank.example');
    expect(loadConfig({ ISSUER: 'https://bank.example/oidc' }).issuer).toBe('https://bank.example/oidc');
  });

  test('http is accepted for 127.0.0.1', () => {
    expect(loadConfig({ ISSUER: 'http://127.0.0.1:4000' }).issuer).toBe('http://127.0.0.1:4000');
  });

  test('TRUST_PROXY accepts true and 1', () => {
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
  });

  test('COOKIE_KEYS is split on commas, newest first', () => {
    const second = 'z'.repeat(40);
    expect(loadConfig({ COOKIE_KEYS: `${KEY}, ${second}` }).cookieKeys).toEqual([KEY, second]);
  });

  test('a complete production environment loads', () => {
    const config = loadConfig(PRODUCTION);
    expect(config.env).toBe('production');
    expect(config.databaseUrl).toBe(PRODUCTION.DATABASE_URL);
    expect(config.cookieKeys).toEqual([KEY]);
  });
});

describe('production requirements', () => {
  test('production without DATABASE_URL throws naming DATABASE_URL', () => {
    const error = configError({ NODE_ENV: 'production', COOKIE_KEYS: KEY });
    expectOneLineNaming(error, 'DATABASE_URL');
  });

  test('production without COOKIE_KEYS throws naming COOKIE_KEYS', () => {
    const error = configError({ NODE_ENV: 'production', DATABASE_URL: PRODUCTION.DATABASE_URL });
    expectOneLineNaming(error, 'COOKIE_KEYS');
  });

  test('production without DATA_ENCRYPTION_KEY throws naming DATA_ENCRYPTION_KEY', () => {
    const withoutDataKey = { ...PRODUCTION, DATA_ENCRYPTION_KEY: '' };
    expectOneLineNaming(configError(withoutDataKey), 'DATA_ENCRYPTION_KEY');
  });

  test('outside production DATA_ENCRYPTION_KEY may be unset (a key is generated and stored)', () => {
    expect(loadConfig({}).dataEncryptionKeys).toBeUndefined();
    expect(loadConfig({ NODE_ENV: 'test' }).dataEncryptionKeys).toBeUndefined();
  });

  test('DPOP_NONCE_SECRET is decoded to its 32 bytes; unset, it is left to be derived', () => {
    const secret = Buffer.alloc(32, 7);
    expect(loadConfig({ DPOP_NONCE_SECRET: secret.toString('base64url') }).dpopNonceSecret).toEqual(secret);
    expect(loadConfig({}).dpopNonceSecret).toBeUndefined();
  });

  test('DATA_ENCRYPTION_KEY is split on commas, newest first, each decoded to its 32 bytes', () => {
    const older = Buffer.alloc(32, 2).toString('base64url');
    const keys = loadConfig({ DATA_ENCRYPTION_KEY: `${DATA_KEY}, ${older}` }).dataEncryptionKeys;
    expect(keys).toEqual([Buffer.alloc(32, 1), Buffer.alloc(32, 2)]);
    const standard = Buffer.alloc(32, 0xfb);
    expect(loadConfig({ DATA_ENCRYPTION_KEY: standard.toString('base64') }).dataEncryptionKeys).toEqual([
      standard,
    ]);
  });

  test('production with SEED_DEMO=true throws naming SEED_DEMO', () => {
    expectOneLineNaming(configError({ ...PRODUCTION, SEED_DEMO: 'true' }), 'SEED_DEMO');
  });
});

describe('bad values throw a one-line ConfigError naming the variable', () => {
  test.each(['abc', '-1', '70000', '3000.5', ' 3000'])('PORT=%j', (value) => {
    expectOneLineNaming(configError({ PORT: value }), 'PORT');
  });

  test.each(['http://bank.example', 'http://localhost.bank.example', 'not a url', 'bank.example'])(
    'ISSUER=%j',
    (value) => {
      expectOneLineNaming(configError({ ISSUER: value }), 'ISSUER');
    },
  );

  test.each(['yes', 'on', 'TRUE '])('TRUST_PROXY=%j', (value) => {
    expectOneLineNaming(configError({ TRUST_PROXY: value }), 'TRUST_PROXY');
  });

  test.each(['short', `${KEY},short`])('COOKIE_KEYS=%j', (value) => {
    expectOneLineNaming(configError({ COOKIE_KEYS: value }), 'COOKIE_KEYS');
  });

  test.each([
    'short',
    Buffer.alloc(31).toString('base64url'),
    Buffer.alloc(33).toString('base64url'),
    `${Buffer.alloc(32).toString('base64url')}!`,
    `${Buffer.alloc(32).toString('base64url')},`,
  ])('DATA_ENCRYPTION_KEY=%j', (value) => {
    const error = configError({ DATA_ENCRYPTION_KEY: value });
    expectOneLineNaming(error, 'DATA_ENCRYPTION_KEY');
    expect(error.message).not.toContain(value);
  });

  test.each([
    'short',
    Buffer.alloc(31).toString('base64url'),
    Buffer.alloc(33).toString('base64url'),
    `${Buffer.alloc(32).toString('base64url')}!`,
  ])('DPOP_NONCE_SECRET=%j', (value) => {
    const error = configError({ DPOP_NONCE_SECRET: value });
    expectOneLineNaming(error, 'DPOP_NONCE_SECRET');
    expect(error.message).not.toContain(value);
  });

  test.each(['0', '99', '600001', '3s'])('DATABASE_STATEMENT_TIMEOUT_MS=%j', (value) => {
    expectOneLineNaming(
      configError({ DATABASE_STATEMENT_TIMEOUT_MS: value }),
      'DATABASE_STATEMENT_TIMEOUT_MS',
    );
  });

  test.each(['0.00', '10000', '10000.5', '-5.00', '1e4', '010.00', 'lots'])(
    'PAYMENT_MAX_AMOUNT=%j',
    (value) => {
      expectOneLineNaming(configError({ PAYMENT_MAX_AMOUNT: value }), 'PAYMENT_MAX_AMOUNT');
    },
  );

  test.each(['0', '3601', 'soon'])('KEY_REFRESH_INTERVAL=%j', (value) => {
    expectOneLineNaming(configError({ KEY_REFRESH_INTERVAL: value }), 'KEY_REFRESH_INTERVAL');
  });

  test.each(['-1', `${31 * DAY}`])('KEY_ACTIVATION_DELAY=%j', (value) => {
    expectOneLineNaming(configError({ KEY_ACTIVATION_DELAY: value }), 'KEY_ACTIVATION_DELAY');
  });

  test('a short COOKIE_KEYS is not echoed back', () => {
    const error = configError({ COOKIE_KEYS: 'hunter2-secret' });
    expect(error.message).not.toContain('hunter2-secret');
  });

  test.each(['mysql://db/passbook', 'not a url'])('DATABASE_URL=%j', (value) => {
    expectOneLineNaming(configError({ DATABASE_URL: value }), 'DATABASE_URL');
  });

  test.each([
    ['PORT', '80\n80'],
    ['TRUST_PROXY', 'true\nfalse'],
    ['ISSUER', 'bank\nexample'],
  ])('%s with a newline in its value still gives one line', (variable, value) => {
    expectOneLineNaming(configError({ [variable]: value }), variable);
  });
});

describe('SEED_DEMO default', () => {
  test('true in development without DATABASE_URL', () => {
    expect(loadConfig({}).seedDemo).toBe(true);
    expect(loadConfig({ NODE_ENV: 'development' }).seedDemo).toBe(true);
  });

  test('false in development with DATABASE_URL', () => {
    expect(loadConfig({ DATABASE_URL: PRODUCTION.DATABASE_URL }).seedDemo).toBe(false);
  });

  test('false in test and production', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).seedDemo).toBe(false);
    expect(loadConfig(PRODUCTION).seedDemo).toBe(false);
  });

  test('SEED_DEMO=false turns it off in development', () => {
    expect(loadConfig({ SEED_DEMO: 'false' }).seedDemo).toBe(false);
  });
});

describe('the server entry point', () => {
  async function runServer(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const child = spawn(process.execPath, ['src/main.ts'], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the server did not exit; stderr so far: ${stderr}`));
      }, 20_000);
      child.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    return { code, stderr };
  }

  test('production without DATABASE_URL exits non-zero with one stderr line naming it', async () => {
    const { code, stderr } = await runServer({ NODE_ENV: 'production', COOKIE_KEYS: KEY });

    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    const lines = stderr.split('\n').filter((line) => line !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('DATABASE_URL');
    expect(stderr).not.toMatch(/^\s+at /m);
  });

  test('production without DATA_ENCRYPTION_KEY refuses to start, with one stderr line naming it', async () => {
    const withoutDataKey = { ...PRODUCTION, DATA_ENCRYPTION_KEY: '' };
    const { code, stderr } = await runServer(withoutDataKey);

    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    const lines = stderr.split('\n').filter((line) => line !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^passbook: DATA_ENCRYPTION_KEY is required when NODE_ENV=production/);
    expect(stderr).not.toMatch(/^\s+at /m);
  });

  test('production without DATABASE_URL or COOKIE_KEYS also exits with one line naming DATABASE_URL', async () => {
    const { code, stderr } = await runServer({ NODE_ENV: 'production' });

    expect(code).not.toBe(0);
    const lines = stderr.split('\n').filter((line) => line !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('DATABASE_URL');
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});
