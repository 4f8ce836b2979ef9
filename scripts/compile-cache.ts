import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { startScript } from './start-script.ts';

/**
 * Fills Node.js's compile cache (`NODE_COMPILE_CACHE`, which `npm start` and the image set) with
 * every module a Passbook node loads at start, without starting one. A node that finds its
 * modules there loads them already stripped of their types and compiled: it never loads the
 * TypeScript parser, which would stay resident for the node's whole life (about 18 MB), and it
 * starts faster. Node.js keeps a cache per user, per Node.js version and per set of V8 flags, so
 * the modules are loaded by a child with `npm start`'s flags, and this must run where the node
 * will run, as the user it runs as (the image does, at build time).
 *
 *   NODE_COMPILE_CACHE=node_modules/.cache/passbook node scripts/compile-cache.ts
 */

const ROOT = path.resolve(import.meta.dirname, '..');

// src/main.ts imported, not started, loads every module and starts nothing.
const LOAD_EVERY_MODULE = "await import('./src/main.ts'); (await import('node:module')).flushCompileCache();";

if (!process.env.NODE_COMPILE_CACHE) {
  process.stderr.write('compile-cache: NODE_COMPILE_CACHE is not set; nothing to fill\n');
  process.exit(1);
}
const { nodeFlags } = await startScript();
const child = spawn(process.execPath, [...nodeFlags, '--input-type=module', '-e', LOAD_EVERY_MODULE], {
  cwd: ROOT,
  stdio: 'inherit',
});
const [code] = (await once(child, 'exit')) as [number | null];
process.exitCode = code ?? 1;
