import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import {
  EmbeddedPostgresError,
  cachedNativeDir,
  canTraverse,
  ensureRootOwnedFolder,
  relocatedClusterDir,
} from '../../src/db/embedded-root.ts';

/** The checks behind running the embedded PostgreSQL as root from folders `postgres` can reach. */

const asRoot = process.getuid?.() === 0;
const describeAsRoot = asRoot ? describe : describe.skip;
const stranger = { uid: (process.getuid?.() ?? 0) + 4242, gid: (process.getgid?.() ?? 0) + 4242 };

let scratch: string;

beforeEach(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'passbook-embedded-root-'));
});

afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('canTraverse', () => {
  test('needs the search bit that applies to the user on every folder down to the target', async () => {
    const inner = path.join(scratch, 'inner');
    await mkdir(inner, { mode: 0o755 });
    await chmod(scratch, 0o700);
    expect(await canTraverse(inner, stranger)).toBe(false);
    await chmod(scratch, 0o711);
    expect(await canTraverse(inner, stranger)).toBe(true);
  });
});

describe('relocatedClusterDir', () => {
  test('is the same for the same data folder and different for another', () => {
    expect(relocatedClusterDir('/example/home/ana/passbook/.data')).toBe(
      relocatedClusterDir('/example/home/ana/passbook/.data'),
    );
    expect(relocatedClusterDir('/example/home/ana/passbook/.data')).not.toBe(
      relocatedClusterDir('/example/home/bo/passbook/.data'),
    );
  });
});

describeAsRoot('ensureRootOwnedFolder (as root)', () => {
  test('creates missing folders that postgres can pass through', async () => {
    const folder = path.join(scratch, 'a', 'b');
    await ensureRootOwnedFolder(folder);
    expect((await stat(folder)).mode & 0o777).toBe(0o755);
  });

  test('refuses a folder that others can write to', async () => {
    const folder = path.join(scratch, 'open');
    await mkdir(folder);
    await chmod(folder, 0o777);
    await expect(ensureRootOwnedFolder(folder)).rejects.toThrow(EmbeddedPostgresError);
  });

  test('refuses a folder someone else made first', async () => {
    const folder = path.join(scratch, 'planted');
    await mkdir(folder, { mode: 0o755 });
    await chown(folder, stranger.uid, stranger.gid);
    await expect(ensureRootOwnedFolder(path.join(folder, 'cache'))).rejects.toThrow(/owned by root/);
  });
});

describeAsRoot('cachedNativeDir (as root)', () => {
  test('copies once, links and all, with nothing writable by others, then reuses the copy', async () => {
    const native = path.join(scratch, 'native');
    await mkdir(path.join(native, 'bin'), { recursive: true });
    await mkdir(path.join(native, 'lib'));
    await writeFile(path.join(native, 'bin', 'postgres'), '#!/bin/sh\n', { mode: 0o777 });
    await writeFile(path.join(native, 'lib', 'libpq.so.5.18'), 'library', { mode: 0o666 });
    await symlink('libpq.so.5.18', path.join(native, 'lib', 'libpq.so.5'));
    const cacheRoot = path.join(scratch, 'cache');

    const first = await cachedNativeDir(native, 'linux-x64-1.2.3', cacheRoot);
    expect(first).toEqual({ dir: path.join(cacheRoot, 'linux-x64-1.2.3'), copied: true });
    expect((await stat(path.join(first.dir, 'bin', 'postgres'))).mode & 0o777).toBe(0o755);
    expect((await stat(path.join(first.dir, 'lib', 'libpq.so.5.18'))).mode & 0o777).toBe(0o644);
    expect((await lstat(path.join(first.dir, 'lib', 'libpq.so.5'))).isSymbolicLink()).toBe(true);
    expect(await readlink(path.join(first.dir, 'lib', 'libpq.so.5'))).toBe('libpq.so.5.18');

    expect(await cachedNativeDir(native, 'linux-x64-1.2.3', cacheRoot)).toEqual({
      dir: first.dir,
      copied: false,
    });
    expect(await readdir(cacheRoot)).toEqual(['linux-x64-1.2.3']);
  });
});
