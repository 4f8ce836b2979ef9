import { spawn } from 'node:child_process';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createKnex, type Knex } from '../src/db/knex.ts';
import { TEST_COOKIE_KEYS, TEST_DATA_ENCRYPTION_KEY, testDatabaseUrl } from './support/passbook.ts';

/**
 * `clients:create --backchannel-logout-uri`, run as an operator runs it: a URI the delivery
 * policy could never deliver to is refused with one line, and nothing is registered.
 */

const ROOT = path.resolve(import.meta.dirname, '..');
const RUN = `cli-bcl-${randomBytes(4).toString('hex')}`;
let knex: Knex;

beforeAll(() => {
  knex = createKnex(testDatabaseUrl());
});

afterAll(async () => {
  await knex('clients')
    .whereRaw("metadata->>'client_name' like ?", [`${RUN}%`])
    .delete();
  await knex.destroy();
});

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function createApp(
  backchannelLogoutUri: string,
  env: Record<string, string> = {},
): Promise<CliResult & { name: string }> {
  const name = `${RUN}-${randomBytes(4).toString('hex')}`;
  const args = [
    'src/cli/main.ts',
    'clients:create',
    '--name',
    name,
    '--redirect-uri',
    'https://app.example/callback',
    '--backchannel-logout-uri',
    backchannelLogoutUri,
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: testDatabaseUrl(), LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) =>
    child.on('exit', (exitCode) => resolve(exitCode)),
  );
  return { code, stdout, stderr, name };
}

async function clientsNamed(name: string): Promise<number> {
  const rows = await knex('clients').whereRaw("metadata->>'client_name' = ?", [name]);
  return rows.length;
}

test('a private address off the allow-list is refused with one line, and nothing is registered', async () => {
  const result = await createApp('https://10.9.8.7/backchannel-logout');

  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr).toBe(
    'passbook: backchannel_logout_uri https://10.9.8.7/backchannel-logout could never receive logout tokens: 10.9.8.7 is a loopback, private or other special-use address, and the host is not in BACKCHANNEL_LOGOUT_ALLOWED_HOSTS\n',
  );
  expect(await clientsNamed(result.name)).toBe(0);
});

test('the same address is registered once the operator allow-lists it', async () => {
  const result = await createApp('https://10.9.8.7/backchannel-logout', {
    BACKCHANNEL_LOGOUT_ALLOWED_HOSTS: '10.9.8.7',
  });

  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(JSON.parse(result.stdout)).toMatchObject({
    backchannel_logout_uri: 'https://10.9.8.7/backchannel-logout',
  });
  expect(await clientsNamed(result.name)).toBe(1);
});

test('in development a local app on http://localhost is registered (the local demo)', async () => {
  const result = await createApp('http://localhost:4000/backchannel-logout');

  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(await clientsNamed(result.name)).toBe(1);
});

test('in production plain http is refused, even to an allow-listed host', async () => {
  const result = await createApp('http://10.9.8.7/backchannel-logout', {
    NODE_ENV: 'production',
    COOKIE_KEYS: TEST_COOKIE_KEYS,
    DATA_ENCRYPTION_KEY: TEST_DATA_ENCRYPTION_KEY,
    BACKCHANNEL_LOGOUT_ALLOWED_HOSTS: '10.9.8.7',
  });

  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    'passbook: backchannel_logout_uri http://10.9.8.7/backchannel-logout could never receive logout tokens: it must use https\n',
  );
  expect(await clientsNamed(result.name)).toBe(0);
});
