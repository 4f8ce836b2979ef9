import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import { PROJECT_ROOT } from '../support/project.ts';

/**
 * The checkout must work wherever it is cloned: no file may name a folder of the machine it was
 * written on. A test that spawned the CLI in such a folder would quietly test another copy.
 */

const MACHINE_PATH = /["'`]\/(?:work|home|root|Users|mnt|srv|opt)\/[^"'`\s]*/g;

function trackedFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z'], { cwd: PROJECT_ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file && !file.endsWith('package-lock.json') && !file.startsWith('public/'));
}

test('no tracked file names an absolute folder of a particular machine', () => {
  const offenders = trackedFiles().flatMap((file) => {
    const text = readFileSync(path.join(PROJECT_ROOT, file), 'utf8');
    return [...text.matchAll(MACHINE_PATH)].map((match) => `${file}: ${match[0]}`);
  });
  expect(offenders).toEqual([]);
});

test('the tests find the project from their own location', () => {
  expect(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')).toContain('"name": "passbook"');
});
