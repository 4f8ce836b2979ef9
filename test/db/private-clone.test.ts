import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import pg from 'pg';
import { relocatedClusterDir } from '../../src/db/embedded-root.ts';
import { freePort } from '../../scripts/ports.ts';

/**
 * The README's commands from a clone in a private (0700) folder, as root: PostgreSQL runs as the
 * `postgres` user, which cannot enter that folder, so neither its binaries (node_modules) nor its
 * data (.data) may stay there. The clone has its own copy of node_modules, since a link to one
 * outside the private folder would hide exactly what is being tested.
 */

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../..');
const asRoot = process.getuid?.() === 0;
const STACK_FRAME = /^\s+at .+(:\d+:\d+\)?|\(native\))$/m;

jest.setTimeout(90_000);

/** The working tree as git sees it (tracked and new files, nothing ignored), plus node_modules. */
async function cloneInto(dir: string): Promise<void> {
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: REPO,
    maxBuffer: 16 * 1024 * 1024,
  });
  for (const file of stdout.split('\0').filter(Boolean)) {
    const from = path.join(REPO, file);
    if (!existsSync(from)) continue;
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await copyFile(from, path.join(dir, file));
  }
  await run('cp', ['-a', await realpath(path.join(REPO, 'node_modules')), path.join(dir, 'node_modules')]);
}

/** The environment of a newcomer: no database configured, development, logs on. */
function newcomerEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'development', LOG_LEVEL: 'info', ...extra };
  for (const name of ['DATABASE_URL', 'TEST_DATABASE_URL', 'PASSBOOK_TEST_DATABASE_URL', 'DATA_DIR']) {
    delete env[name];
  }
  return env;
}

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => Promise<boolean> | boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe(
  asRoot
    ? 'as root, from a clone in a private folder'
    : 'as root, from a clone in a private folder (skipped: only root runs PostgreSQL as another user)',
  () => {
    let home: string;
    let clone: string;
    let port: number;
    let postgresPort: number;
    const started: Started[] = [];

    /** `npm start` in its own process group, so that stopping it reaches PostgreSQL too. */
    function npmStart(): Started {
      const child = spawn('npm', ['start'], {
        cwd: clone,
        env: newcomerEnv({ PORT: String(port), EMBEDDED_POSTGRES_PORT: String(postgresPort) }),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const handle = { child, stdout: () => stdout, stderr: () => stderr };
      started.push(handle);
      return handle;
    }

    async function discoveryAnswers(passbook: Started): Promise<void> {
      await waitFor(
        async () => {
          if (passbook.child.exitCode !== null && !groupAlive(passbook.child.pid!)) {
            throw new Error(`npm start stopped: ${passbook.stderr()}${passbook.stdout()}`);
          }
          const response = await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`).catch(
            () => undefined,
          );
          return response?.status === 200;
        },
        'discovery to answer 200',
        45_000,
      );
    }

    /** SIGTERM to npm, the shell and Passbook at once, as a terminal's Ctrl-C would; waits until all are gone. */
    async function stop(passbook: Started): Promise<void> {
      process.kill(-passbook.child.pid!, 'SIGTERM');
      await waitFor(() => !groupAlive(passbook.child.pid!), 'npm start and PostgreSQL to stop', 20_000);
    }

    beforeAll(async () => {
      if (!asRoot) return;
      home = await mkdtemp(path.join(os.tmpdir(), 'passbook-home-'));
      await chmod(home, 0o700);
      clone = path.join(home, 'passbook');
      await cloneInto(clone);
      [port, postgresPort] = [await freePort(), await freePort()];
    });

    afterAll(async () => {
      if (!asRoot) return;
      for (const { child } of started) {
        if (child.pid && groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
      }
      const dataDir = path.join(clone, '.data');
      if (existsSync(dataDir)) {
        await rm(relocatedClusterDir(await realpath(dataDir)), { recursive: true, force: true });
      }
      await rm(home, { recursive: true, force: true });
    });

    test('npm start works, stops on SIGTERM, and finds its data again on the next start', async () => {
      const first = npmStart();
      await discoveryAnswers(first);
      expect(first.stdout()).toContain('keeps its data in');
      expect(first.stdout()).toContain('demo customer and app are ready');

      // Whatever is written while it runs must outlive the restart.
      const credentials = JSON.parse(await readFile(path.join(clone, '.data', 'postgres.json'), 'utf8')) as {
        password: string;
      };
      const client = new pg.Client({
        host: '127.0.0.1',
        port: postgresPort,
        user: 'passbook',
        password: credentials.password,
        database: 'passbook',
      });
      await client.connect();
      await client.query(
        `CREATE TABLE restart_marker (note text); INSERT INTO restart_marker VALUES ('kept')`,
      );
      await client.end();

      await stop(first);
      expect(first.stdout()).toContain('embedded PostgreSQL stopped');

      const second = npmStart();
      await discoveryAnswers(second);
      expect(second.stdout()).not.toContain('client_secret (shown once');
      const again = new pg.Client({
        host: '127.0.0.1',
        port: postgresPort,
        user: 'passbook',
        password: credentials.password,
        database: 'passbook',
      });
      await again.connect();
      const { rows } = await again.query<{ note: string }>('SELECT note FROM restart_marker');
      await again.end();
      expect(rows).toEqual([{ note: 'kept' }]);
      await stop(second);

      for (const passbook of [first, second]) {
        expect(passbook.stderr()).not.toMatch(STACK_FRAME);
        expect(passbook.stderr()).not.toContain('Error');
      }
    });

    test("npm test's own throwaway PostgreSQL starts from there too", async () => {
      const script = `
      import { startTestDatabaseServer, stopTestDatabaseServer } from './test/support/database.ts';
      import pg from 'pg';
      const server = await startTestDatabaseServer();
      const client = new pg.Client({ connectionString: server.adminUrl });
      await client.connect();
      const { rows } = await client.query('SELECT 1 AS one');
      await client.end();
      await stopTestDatabaseServer(server);
      console.log(JSON.stringify({ one: rows[0].one, clusterDir: server.embedded.database.clusterDir }));
    `;
      const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', script], {
        cwd: clone,
        env: newcomerEnv({}),
      });
      const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
        one: number;
        clusterDir: string;
      };
      expect(result.one).toBe(1);
      expect(existsSync(result.clusterDir)).toBe(false);
      expect(stderr).not.toMatch(STACK_FRAME);
    });
  },
);
