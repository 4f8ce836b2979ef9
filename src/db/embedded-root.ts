import { createHash, randomBytes } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, cp, lstat, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * What the embedded PostgreSQL needs when Passbook runs as root. PostgreSQL refuses to run as
 * root, so it runs as the `postgres` user, which must reach its binaries and its data folder.
 * A clone in a private folder (a 0700 home directory) offers neither, and opening up someone's
 * home folder is not ours to do. Instead, whatever `postgres` cannot reach is kept in a
 * root-owned folder that nobody else can write to: the binaries are copied once per version to
 * CACHE_ROOT, and the cluster lives under CLUSTER_ROOT in a folder named after the data folder.
 */

const CACHE_ROOT = '/var/cache/passbook/embedded-postgres';
export const CLUSTER_ROOT = '/var/lib/passbook/embedded-postgres';

/** The uid and gid a child runs with; Node drops supplementary groups when it switches. */
export interface Identity {
  uid: number;
  gid: number;
}

export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

const run = promisify(execFile);

async function idOf(flag: '-u' | '-g'): Promise<number> {
  const { stdout } = await run('id', [flag, 'postgres']);
  return Number.parseInt(stdout, 10);
}

async function lookUpPostgresUser(): Promise<Identity | undefined> {
  try {
    return { uid: await idOf('-u'), gid: await idOf('-g') };
  } catch {
    return undefined;
  }
}

/** The `postgres` user, created as a system account without a home or a shell if missing. */
export async function postgresUser(): Promise<Identity> {
  const existing = await lookUpPostgresUser();
  if (existing) return existing;
  try {
    await run('groupadd', ['--system', 'postgres']).catch((error: { code?: unknown }) => {
      // 9: the group already exists, which is fine.
      if (error.code !== 9) throw error;
    });
    await run('useradd', [
      '--system',
      '--gid',
      'postgres',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      'postgres',
    ]);
  } catch {
    throw new EmbeddedPostgresError(
      'running as root, the embedded PostgreSQL needs a "postgres" user and could not create one; create it (useradd --system postgres) or set DATABASE_URL',
    );
  }
  const created = await lookUpPostgresUser();
  if (!created) throw new EmbeddedPostgresError('created the "postgres" user but cannot find it');
  return created;
}

function ancestry(folder: string): string[] {
  const chain: string[] = [];
  for (let current = folder; ; current = path.dirname(current)) {
    chain.unshift(current);
    if (current === path.dirname(current)) return chain;
  }
}

/** Whether `who` may search every folder from / down to `folder` (an absolute, real path). */
export async function canTraverse(folder: string, who: Identity): Promise<boolean> {
  for (const step of ancestry(folder)) {
    const info = await stat(step);
    const bit =
      info.uid === who.uid ? constants.S_IXUSR : info.gid === who.gid ? constants.S_IXGRP : constants.S_IXOTH;
    if (!(info.mode & bit)) return false;
  }
  return true;
}

/**
 * Creates `folder` if needed, then makes sure that it and every folder above it are real
 * folders owned by root that nobody else can write to: otherwise someone could have planted
 * binaries or a cluster configuration there for root or `postgres` to run.
 */
export async function ensureRootOwnedFolder(folder: string): Promise<void> {
  for (const step of ancestry(folder)) {
    const created = await mkdir(step).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        return false;
      },
    );
    // Whatever the umask, a folder made here must let `postgres` through.
    if (created) await chmod(step, 0o755);
    const info = await lstat(step);
    // A sticky folder of root's (/tmp) lets others add names but never take ours over.
    const shared = step !== folder && (info.mode & 0o1000) !== 0;
    if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022 && !shared)) {
      throw new EmbeddedPostgresError(
        `${step} must be a folder owned by root that only root can write to (it holds the embedded PostgreSQL for root); fix it or set DATABASE_URL`,
      );
    }
  }
}

interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** Runs `postgres --version` as `who`: the one test that the binaries, libraries and path all work. */
export function probeBinaries(binDir: string, who: Identity | undefined): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const child = spawn(path.join(binDir, 'postgres'), ['--version'], {
      ...who,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) => resolve({ ok: false, detail: error.message }));
    child.on('close', (code) =>
      resolve({ ok: code === 0, detail: output.trim().split('\n')[0] || `exit code ${code}` }),
    );
  });
}

async function stripWriteForOthers(folder: string): Promise<void> {
  await chmod(folder, 0o755);
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const entryPath = path.join(folder, entry.name);
    if (entry.isDirectory()) await stripWriteForOthers(entryPath);
    else if (entry.isFile()) await chmod(entryPath, (await stat(entryPath)).mode & 0o755);
  }
}

const COMPLETE = '.passbook-complete';

/**
 * A copy of the native distribution (bin, lib, share) under CACHE_ROOT, made once per package
 * version and reused. It is copied beside its final name and renamed into place only when
 * whole, so a crash or a second process starting at the same time never sees half a copy.
 */
export async function cachedNativeDir(
  nativeDir: string,
  key: string,
  cacheRoot: string = CACHE_ROOT,
): Promise<{ dir: string; copied: boolean }> {
  await ensureRootOwnedFolder(cacheRoot);
  const dir = path.join(cacheRoot, key);
  const complete = await stat(path.join(dir, COMPLETE)).then(
    () => true,
    () => false,
  );
  if (complete) {
    await ensureRootOwnedFolder(dir);
    return { dir, copied: false };
  }
  const partial = `${dir}.partial-${randomBytes(4).toString('hex')}`;
  try {
    await cp(nativeDir, partial, { recursive: true, verbatimSymlinks: true, errorOnExist: true });
    await stripWriteForOthers(partial);
    await writeFile(path.join(partial, COMPLETE), `${key}\n`, { mode: 0o644 });
    await rename(partial, dir).catch((error: NodeJS.ErrnoException) => {
      // Another process finished its copy first; theirs is as good as ours.
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
    });
    await stat(path.join(dir, COMPLETE)).catch(() => {
      throw new EmbeddedPostgresError(`${dir} is an incomplete copy of PostgreSQL; delete it`);
    });
    await ensureRootOwnedFolder(dir);
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
  return { dir, copied: true };
}

/**
 * Where the cluster of a data folder that `postgres` cannot reach lives: the same folder for the
 * same data folder on every start (so its data survives), a different one for each data folder.
 */
export function relocatedClusterDir(realDataRoot: string, clusterRoot: string = CLUSTER_ROOT): string {
  const digest = createHash('sha256').update(realDataRoot).digest('hex').slice(0, 16);
  return path.join(clusterRoot, digest);
}
