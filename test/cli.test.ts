import { expect } from '@jest/globals';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import argon2 from 'argon2';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { createKnex, type Knex } from '../src/db/knex.ts';
import { testDatabaseUrl } from './support/passbook.ts';
import { PROJECT_ROOT } from './support/project.ts';

/** The real admin CLI, run as an operator runs it, against this run's database. */

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const RUN = `cli${randomBytes(4).toString('hex')}`;
let knex: Knex;

function unique(label: string): string {
  return `${RUN}-${label}-${randomBytes(4).toString('hex')}`;
}

async function cli(args: string[], stdin?: string): Promise<CliResult> {
  const child = spawn(process.execPath, ['src/cli/main.ts', ...args], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: testDatabaseUrl(), LOG_LEVEL: 'silent' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(stdin ?? '');
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cli ${args.join(' ')} did not exit; stderr so far: ${stderr}`));
    }, 25_000);
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  return { code, stdout, stderr };
}

/** The parsed stdout of a run that must have succeeded. */
function succeeded(result: CliResult): Record<string, unknown> {
  if (result.code !== 0) throw new Error(`exit ${result.code}; stderr: ${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

function stderrLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((line) => line !== '');
}

function digest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

interface ClientRow {
  client_id: string;
  metadata: Record<string, unknown>;
  client_secret_hash: string | null;
}

async function clientRow(clientId: string): Promise<ClientRow | undefined> {
  return knex<ClientRow>('clients').where({ client_id: clientId }).first();
}

async function clientsNamed(name: string): Promise<number> {
  const [row] = await knex('clients')
    .whereRaw("metadata->>'client_name' = ?", [name])
    .count<{ count: string }[]>({ count: '*' });
  return Number(row?.count);
}

beforeAll(() => {
  knex = createKnex(testDatabaseUrl());
});

afterAll(async () => {
  await knex('customers').where('username', 'like', `${RUN}-%`).delete();
  await knex('clients')
    .whereRaw("metadata->>'client_name' like ?", [`${RUN}-%`])
    .delete();
  await knex('oidc_models').where('id', 'like', `${RUN}-%`).delete();
  await knex.destroy();
});

describe('customers:create', () => {
  test('answers to its old name users:create too', async () => {
    const username = unique('alias');
    succeeded(await cli(['users:create', '--username', username, '--password-stdin'], 'alias-password-1\n'));
    expect(await knex('customers').where({ username }).first('id')).toBeDefined();
  });

  test('reads the password from stdin, prints the customer, stores only an argon2id hash', async () => {
    const username = unique('user');
    const password = `pw-${randomBytes(12).toString('base64url')}`;

    const result = await cli(
      [
        'customers:create',
        '--username',
        username,
        '--password-stdin',
        '--name',
        'Ada Lovelace',
        '--email',
        'ada@example.com',
      ],
      `${password}\n`,
    );

    const printed = succeeded(result);
    expect(printed).toMatchObject({ username, name: 'Ada Lovelace', email: 'ada@example.com' });
    expect(printed.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(result.stdout).not.toContain(password);
    expect(result.stderr).not.toContain(password);

    const row: { username: string; password_hash: string } | undefined = await knex('customers')
      .where({ id: printed.id })
      .first('username', 'password_hash');
    expect(row?.username).toBe(username);
    const hash = row?.password_hash ?? '';
    expect(hash).not.toContain(password);
    const [, algorithm, version, params] = hash.split('$');
    expect(algorithm).toBe('argon2id');
    expect(version).toBe('v=19');
    expect(Object.fromEntries((params ?? '').split(',').map((pair) => pair.split('=')))).toEqual({
      m: '19456',
      t: '2',
      p: '1',
    });
    // The trailing newline of the pipe is not part of the password.
    expect(await argon2.verify(hash, password)).toBe(true);
  });

  test('a taken username exits 1 with one clear stderr line, whatever its case', async () => {
    const username = unique('dup');
    succeeded(
      await cli(['customers:create', '--username', username, '--password-stdin'], 'first-password-1\n'),
    );

    for (const again of [username, username.toUpperCase()]) {
      const result = await cli(
        ['customers:create', '--username', again, '--password-stdin'],
        'second-password-2\n',
      );
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      const lines = stderrLines(result);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(again);
      expect(lines[0]).toMatch(/taken/);
    }
    const [row] = await knex('customers')
      .whereRaw('lower(username) = lower(?)', [username])
      .count<{ count: string }[]>({ count: '*' });
    expect(Number(row?.count)).toBe(1);
  });

  test('a password on the command line is refused and nothing is stored', async () => {
    const username = unique('argv');
    const result = await cli([
      'customers:create',
      '--username',
      username,
      '--password',
      'on-the-command-line',
    ]);

    expect(result.code).toBe(2);
    expect(await knex('customers').where({ username }).first()).toBeUndefined();
  });
});

/** An app's JWK set, written to a file of its own, as its developers would hand it over. */
async function keyFile(key: JWK): Promise<string> {
  const file = path.join(await mkdtemp(path.join(os.tmpdir(), 'passbook-cli-keys-')), 'app-keys.json');
  await writeFile(file, JSON.stringify({ keys: [key] }));
  return file;
}

function createFapiApp(name: string, jwksFile: string): string[] {
  const flags = ['--redirect-uri', 'https://pay.example/cb', '--profile', 'fapi2', '--jwks-file', jwksFile];
  return ['clients:create', '--name', name, ...flags];
}

describe('clients:create', () => {
  test('a confidential client gets a secret once; the table keeps only its digest', async () => {
    const name = unique('app');
    const printed = succeeded(
      await cli(['clients:create', '--name', name, '--redirect-uri', 'https://app.example/cb']),
    );

    expect(printed).toMatchObject({
      client_name: name,
      redirect_uris: ['https://app.example/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const clientId = String(printed.client_id);
    const secret = String(printed.client_secret);
    expect(clientId.length).toBeGreaterThanOrEqual(16);
    expect(secret.length).toBeGreaterThanOrEqual(43);

    const row = await clientRow(clientId);
    expect(row?.client_secret_hash).toBe(digest(secret));
    expect(JSON.stringify(row)).not.toContain(secret);
  });

  test('--public prints no secret, uses token_endpoint_auth_method none, and stores no digest', async () => {
    const name = unique('native');
    const printed = succeeded(
      await cli(['clients:create', '--name', name, '--public', '--redirect-uri', 'https://app.example/cb']),
    );

    expect(printed).not.toHaveProperty('client_secret');
    expect(printed.token_endpoint_auth_method).toBe('none');
    const row = await clientRow(String(printed.client_id));
    expect(row?.client_secret_hash).toBeNull();
    expect(row?.metadata.token_endpoint_auth_method).toBe('none');
  });

  test('--resource-server registers a bank API: a secret, no redirect URIs, no grants, marked as such', async () => {
    const name = unique('api');
    const printed = succeeded(await cli(['clients:create', '--name', name, '--resource-server']));

    expect(printed.client_secret).toEqual(expect.any(String));
    expect(printed.redirect_uris).toEqual([]);
    expect(printed.grant_types).toEqual([]);
    const row = await clientRow(String(printed.client_id));
    expect(row?.metadata.resource_server).toBe(true);
    const listed = succeeded(await cli(['clients:list'])).clients as {
      client_id: string;
      resource_server: boolean;
    }[];
    expect(listed.find((client) => client.client_id === printed.client_id)?.resource_server).toBe(true);
  });

  test('--resource-server with a redirect URI is a usage error and inserts nothing', async () => {
    const name = unique('api');
    const result = await cli([
      'clients:create',
      '--name',
      name,
      '--resource-server',
      '--redirect-uri',
      'https://a.example/cb',
    ]);
    expect(result.code).toBe(2);
    expect(await clientsNamed(name)).toBe(0);
  });

  test('--profile fapi2 --jwks-file registers a FAPI 2.0 app: no secret, its keys, PAR and DPoP required', async () => {
    const name = unique('fapi');
    const { publicKey } = await generateKeyPair('ES256');
    const file = await keyFile({ ...(await exportJWK(publicKey)), kid: 'app-1' });
    const printed = succeeded(await cli(createFapiApp(name, file)));

    expect(printed.client_secret).toBeUndefined();
    expect(printed).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', profile: 'fapi2' });
    const row = await clientRow(String(printed.client_id));
    expect(row?.client_secret_hash).toBeNull();
    expect(row?.metadata).toMatchObject({
      app_profile: 'fapi2',
      token_endpoint_auth_signing_alg: 'ES256',
      require_pushed_authorization_requests: true,
      dpop_bound_access_tokens: true,
      id_token_signed_response_alg: 'ES256',
      jwks: { keys: [{ kty: 'EC', crv: 'P-256', kid: 'app-1', alg: 'ES256' }] },
    });
    const listed = succeeded(await cli(['clients:list'])).clients as { client_id: string; profile: string }[];
    expect(listed.find((client) => client.client_id === printed.client_id)?.profile).toBe('fapi2');
  });

  test.each([
    ['without keys', ['--profile', 'fapi2']],
    ['with an unknown profile', ['--profile', 'fapi1']],
    [
      'with --jwks-uri but no --signing-alg',
      ['--profile', 'fapi2', '--jwks-uri', 'https://pay.example/jwks'],
    ],
    ['with RS256', ['--jwks-uri', 'https://pay.example/jwks', '--signing-alg', 'RS256']],
  ])('clients:create %s is a usage error and inserts nothing', async (_case, flags) => {
    const name = unique('fapi');
    const result = await cli([
      'clients:create',
      '--name',
      name,
      '--redirect-uri',
      'https://pay.example/cb',
      ...flags,
    ]);
    expect(result.code).toBe(2);
    expect(await clientsNamed(name)).toBe(0);
  });

  test('a key file with a private key is refused, saying so, and inserts nothing', async () => {
    const name = unique('fapi');
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const result = await cli(createFapiApp(name, await keyFile(await exportJWK(privateKey))));
    expect(result.code).toBe(1);
    expect(stderrLines(result)).toEqual([expect.stringContaining('private member "d"')]);
    expect(await clientsNamed(name)).toBe(0);
  });

  test.each(['not-a-url', 'https://app.example/cb#fragment'])(
    'an invalid redirect URI (%s) exits 1 and inserts nothing',
    async (redirectUri) => {
      const name = unique('bad');
      const result = await cli(['clients:create', '--name', name, '--redirect-uri', redirectUri]);

      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      const lines = stderrLines(result);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('redirect_uris');
      expect(await clientsNamed(name)).toBe(0);
    },
  );
});

describe('clients:list and clients:delete', () => {
  test('clients:list includes a created client without any secret', async () => {
    const name = unique('listed');
    const created = succeeded(
      await cli(['clients:create', '--name', name, '--redirect-uri', 'https://app.example/cb']),
    );
    const secret = String(created.client_secret);

    const result = await cli(['clients:list']);
    const printed = succeeded(result) as { clients: Record<string, unknown>[] };

    const listed = printed.clients.find((client) => client.client_id === created.client_id);
    expect(listed).toMatchObject({
      client_name: name,
      redirect_uris: ['https://app.example/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      profile: 'ordinary',
    });
    expect(listed).not.toHaveProperty('client_secret');
    expect(result.stdout).not.toContain(secret);
    expect(result.stdout).not.toContain(digest(secret));
  });

  test('clients:delete removes the client; a second delete exits 1', async () => {
    const name = unique('deleted');
    const created = succeeded(
      await cli(['clients:create', '--name', name, '--redirect-uri', 'https://app.example/cb']),
    );
    const clientId = String(created.client_id);

    expect(succeeded(await cli(['clients:delete', clientId]))).toEqual({ deleted: clientId });
    expect(await clientRow(clientId)).toBeUndefined();

    const again = await cli(['clients:delete', clientId]);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    const lines = stderrLines(again);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(clientId);
  });

  test('an identifier that begins with a dash, as one in 64 generated ones does, is taken as one', async () => {
    for (const id of ['-Ab3_dE5fG7hJ9kL', '-'.padEnd(43, 'x'), '--'.padEnd(16, 'y')]) {
      const result = await cli(['clients:delete', id]);
      expect({ id, code: result.code }).toEqual({ id, code: 1 });
      expect(result.stderr).toContain(`no client "${id}"`);
    }
    // A word that is no identifier Passbook makes is still refused as an unknown option.
    expect((await cli(['clients:delete', '--frobnicate'])).code).toBe(2);
  });
});

describe('usage', () => {
  test('an unknown command exits 2 with the usage', async () => {
    const result = await cli(['users:frobnicate']);

    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('unknown command "users:frobnicate"');
    expect(result.stderr).toContain('usage:');
    expect(result.stderr).toContain('clients:create');
  });

  test('no command exits 2 with the usage', async () => {
    const result = await cli([]);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage:');
  });
});

describe('tokens:purge', () => {
  test('prints {"purged": n} and deletes expired rows', async () => {
    const expired = unique('expired');
    const live = unique('live');
    await knex('oidc_models').insert([
      { kind: `Cli${RUN}`, id: expired, payload: {}, expires_at: new Date(Date.now() - 60_000) },
      { kind: `Cli${RUN}`, id: live, payload: {}, expires_at: new Date(Date.now() + 3_600_000) },
    ]);

    const printed = succeeded(await cli(['tokens:purge']));

    expect(printed).toEqual({ purged: expect.any(Number) });
    expect(printed.purged).toBeGreaterThanOrEqual(1);
    expect(await knex('oidc_models').where({ id: expired }).first()).toBeUndefined();
    expect(await knex('oidc_models').where({ id: live }).first()).toBeDefined();
  });
});
