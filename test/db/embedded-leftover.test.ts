import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import pg from 'pg';
import { EmbeddedPostgresError, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { createLogger } from '../../src/log.ts';
import { freePort } from '../../scripts/ports.ts';

/** What an earlier, failed first start leaves in DATA_DIR must not block the next one. */

const log = createLogger({ logLevel: 'silent' });
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'passbook-leftover-'));
  await chmod(dir, 0o755);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('an empty cluster folder left by a failed initdb is initialised on the next start', async () => {
  await mkdir(path.join(dir, 'data', 'postgres'), { recursive: true });
  const database = await startEmbeddedPostgres(path.join(dir, 'data'), await freePort(), log);
  try {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const { rows } = await client.query<{ name: string }>('SELECT current_database() AS name');
    await client.end();
    expect(rows).toEqual([{ name: 'passbook' }]);
  } finally {
    await database.stop();
  }
});

test('a cluster folder holding something else is left alone, with one line saying so', async () => {
  await mkdir(path.join(dir, 'data', 'postgres'), { recursive: true });
  await writeFile(path.join(dir, 'data', 'postgres', 'notes.txt'), 'mine');
  const started = startEmbeddedPostgres(path.join(dir, 'data'), await freePort(), log);
  await expect(started).rejects.toThrow(EmbeddedPostgresError);
  await expect(started).rejects.toThrow(/holds files but no PostgreSQL cluster/);
});
