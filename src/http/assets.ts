import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';

const PUBLIC_DIR = path.resolve(import.meta.dirname, '../../public');

const CONTENT_TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The pages' stylesheets, scripts and images, read once at start-up; nothing else on disk is reachable. */
export function assetsRouter(): Router {
  const router = new Router({ prefix: '/assets' });
  for (const file of readdirSync(PUBLIC_DIR)) {
    const type = CONTENT_TYPES[path.extname(file)];
    if (!type) continue;
    const body = readFileSync(path.join(PUBLIC_DIR, file));
    router.get(`/${file}`, (ctx) => {
      ctx.type = type;
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = body;
    });
  }
  return router;
}
