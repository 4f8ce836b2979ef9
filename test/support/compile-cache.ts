import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from './project.ts';

/** Node.js's compile cache as a node meets it (NODE_COMPILE_CACHE; docs/operations.md#memory). */

const run = promisify(execFile);

/** A new, empty cache directory; the caller removes it. */
export function newCompileCache(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'passbook-compile-cache-'));
}

/**
 * Whether a process with these Node.js flags that imports src/main.ts (which starts nothing when
 * imported) with this compile cache loads the TypeScript parser. It writes what it compiled into
 * the cache as it exits, so ask once per cache.
 */
export async function loadsTypeScriptParser(cache: string, nodeFlags: readonly string[]): Promise<boolean> {
  const script = `
    await import('./src/main.ts');
    const parser = process.moduleLoadList.some((name) => name.includes('internal/deps/amaro'));
    console.log(JSON.stringify({ parser }));
  `;
  const { stdout } = await run(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', NODE_COMPILE_CACHE: cache },
  });
  return (JSON.parse(stdout.trim()) as { parser: boolean }).parser;
}
