import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startScript } from '../../scripts/bench/processes.ts';
import { PROJECT_ROOT } from '../support/project.ts';

/** How a node is started: `npm start` and the image must start it alike. */

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
