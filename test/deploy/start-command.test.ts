import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { startScript } from '../../scripts/start-script.ts';
import { loadsTypeScriptParser, newCompileCache } from '../support/compile-cache.ts';
import { PROJECT_ROOT } from '../support/project.ts';

/**
 * How a node is started: `npm start` and the image must start it alike, and a node whose compile
 * cache is filled (scripts/compile-cache.ts) must not load the TypeScript parser.
 */

const run = promisify(execFile);

/** The image's `ENV NAME=value` settings and its CMD's Node.js flags. */
async function imageStart(): Promise<{ env: Record<string, string>; nodeFlags: string[] }> {
  const dockerfile = await readFile(path.join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const env = [...finalStage.matchAll(/^ENV (\w+)=(\S+)$/gm)].map(
    ([, name = '', value = '']): [string, string] => [name, value],
  );
  const cmd = /^CMD (\[.*\])$/m.exec(finalStage)?.[1] ?? '[]';
  const words = JSON.parse(cmd) as string[];
  return { env: Object.fromEntries(env), nodeFlags: words.filter((word) => word.startsWith('--')) };
}

test('the image starts a node with the same variables and Node.js flags as npm start', async () => {
  const npmStart = await startScript();
  const image = await imageStart();
  expect(image.nodeFlags).toEqual(npmStart.nodeFlags);
  expect(image.env).toEqual(expect.objectContaining(npmStart.env));
  expect(npmStart.nodeFlags).toEqual(
    expect.arrayContaining(['--max-semi-space-size=4', '--heap-growing-percent=100']),
  );
});

describe('the compile cache', () => {
  const caches: string[] = [];

  /** An empty cache of its own: every process that exits writes what it compiled into its cache. */
  async function emptyCache(): Promise<string> {
    const cache = await newCompileCache();
    caches.push(cache);
    return cache;
  }

  afterAll(async () => {
    await Promise.all(caches.map((cache) => rm(cache, { recursive: true, force: true })));
  });

  test('npm start keeps one; with it empty, as on a clone’s first start, the parser is loaded', async () => {
    expect((await startScript()).env.NODE_COMPILE_CACHE).toBeTruthy();
    expect(await loadsTypeScriptParser(await emptyCache(), (await startScript()).nodeFlags)).toBe(true);
  });

  test('filled by scripts/compile-cache.ts, a node loads every module without the TypeScript parser', async () => {
    const cache = await emptyCache();
    await run(process.execPath, ['scripts/compile-cache.ts'], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH ?? '', NODE_COMPILE_CACHE: cache },
    });
    expect(await loadsTypeScriptParser(cache, (await startScript()).nodeFlags)).toBe(false);
  });
});
