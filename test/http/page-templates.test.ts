import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PAGE_TEMPLATES_FILE, compilePageTemplates } from '../../scripts/views/compile.ts';
import { PAGE_TEMPLATES, VIEWS_DIGEST } from '../../src/http/page-templates.generated.ts';
import { compiledPagesAreStale } from '../../src/http/views.ts';
import { VIEWS_DIR, viewsDigest } from '../../src/http/views-digest.ts';
import { PROJECT_ROOT } from '../support/project.ts';

/**
 * The bank's pages are compiled ahead of time (`npm run views`), so that a node never loads pug's
 * compiler; what it serves must still be exactly views/.
 */

test('the compiled pages are what `npm run views` makes of views/ (run it after editing a template)', async () => {
  expect(await readFile(PAGE_TEMPLATES_FILE, 'utf8')).toBe(compilePageTemplates());
});

test('a change to any template, a partial too, makes the compiled pages stale', async () => {
  expect(compiledPagesAreStale()).toBe(false);
  const copy = await mkdtemp(path.join(os.tmpdir(), 'passbook-views-'));
  try {
    await cp(VIEWS_DIR, copy, { recursive: true });
    expect(viewsDigest(copy)).toBe(VIEWS_DIGEST);
    const partial = path.join(copy, 'partials', 'passkeys.pug');
    await writeFile(partial, `${await readFile(partial, 'utf8')}\n//- edited\n`);
    expect(viewsDigest(copy)).not.toBe(VIEWS_DIGEST);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
});

test("a node's modules do not include pug's compiler", async () => {
  const listLoadedModules = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
    await import('./src/main.ts');
    process.stdout.write(JSON.stringify(loaded));`;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', listLoadedModules],
    { cwd: PROJECT_ROOT },
  );
  const loaded = JSON.parse(stdout) as string[];
  expect(loaded.some((url) => url.includes('/src/http/views.ts'))).toBe(true);
  expect(loaded.filter((url) => /\/node_modules\/pug[^/]*\//.test(url))).toEqual([]);
});

test('the compiled pages escape what they are given, in text and in attributes', () => {
  const hostile = '"><script>alert(1)</script>';
  const html =
    PAGE_TEMPLATES.login?.({ username: hostile, error: hostile, action: '/sign-in', csrf: 'c' }) ?? '';
  expect(html).not.toContain('<script>alert(1)');
  expect(html).toContain('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
  expect(html).toContain('role="alert">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</p>');
});
