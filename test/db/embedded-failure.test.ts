import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';

/**
 * When the embedded PostgreSQL cannot start, `npm start` and the CLI say so in one line and exit
 * non-zero: no unhandled 'error' event, no stack trace.
 */

const REPO = path.resolve(import.meta.dirname, '../..');

let dataDir: string;

beforeEach(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'passbook-broken-data-'));
  await chmod(dir, 0o755);
  dataDir = path.join(dir, 'data');
  // A cluster folder that PostgreSQL cannot run from: it has a version and nothing else.
  await mkdir(path.join(dataDir, 'postgres'), { recursive: true });
  await writeFile(path.join(dataDir, 'postgres', 'PG_VERSION'), '18\n');
});

afterEach(async () => {
  await rm(path.dirname(dataDir), { recursive: true, force: true });
});

function runEntry(entry: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'development',
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    PORT: '0',
    EMBEDDED_POSTGRES_PORT: String(20_000 + Math.floor(Math.random() * 20_000)),
  };
  return new Promise((resolve) => {
    execFile(process.execPath, [entry, ...args], { cwd: REPO, env }, (error, _stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stderr }),
    );
  });
}

describe('an embedded PostgreSQL that cannot start', () => {
  test('stops npm start with one line', async () => {
    const { code, stderr } = await runEntry('src/main.ts', []);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^passbook: failed to start: the embedded PostgreSQL did not start: .+\n$/);
  });

  test('stops the CLI with one line', async () => {
    const { code, stderr } = await runEntry('src/cli/main.ts', ['clients:list']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^passbook: failed: the embedded PostgreSQL did not start: .+\n$/);
  });
});
