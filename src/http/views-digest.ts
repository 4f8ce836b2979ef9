import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Owns the question "are the compiled pages those of views/?": a digest of every template,
 * partials included, by path and content. scripts/views/compile.ts writes it into the compiled
 * module; a development node compares it with the templates it finds (src/http/views.ts).
 */

export const VIEWS_DIR = path.resolve(import.meta.dirname, '../../views');

export function viewsDigest(dir: string = VIEWS_DIR): string {
  const digest = createHash('sha256');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.pug'))
    .map((file) => file.split(path.sep).join('/'))
    .sort();
  for (const file of files) {
    digest.update(`${file}\0`);
    digest.update(readFileSync(path.join(dir, file)));
    digest.update('\0');
  }
  return digest.digest('hex');
}
