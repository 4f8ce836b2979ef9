import { readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * How `npm start` starts Passbook, read from package.json's start script: the one place it is
 * written down. The benchmark starts Passbook the same way, scripts/compile-cache.ts fills the
 * cache for those flags, and the image is checked against it (test/deploy/start-command.test.ts).
 */

const ROOT = path.resolve(import.meta.dirname, '..');

export interface StartScript {
  /** The `NAME=value` words before `node`. */
  env: Record<string, string>;
  /** The Node.js flags after it. */
  nodeFlags: string[];
}

export async function startScript(): Promise<StartScript> {
  const manifest = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts?: { start?: string };
  };
  const words = (manifest.scripts?.start ?? '').split(/\s+/).filter(Boolean);
  const node = words.indexOf('node');
  const assignments = words.slice(0, Math.max(node, 0)).map((word) => word.split('='));
  return {
    env: Object.fromEntries(assignments.map(([name = '', ...value]) => [name, value.join('=')])),
    nodeFlags: words.slice(node + 1).filter((word) => word.startsWith('--')),
  };
}
