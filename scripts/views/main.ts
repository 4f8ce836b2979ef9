import { writeFileSync } from 'node:fs';
import { PAGE_TEMPLATES_FILE, compilePageTemplates } from './compile.ts';

/** `npm run views`: compiles views/*.pug into src/http/page-templates.generated.ts. */

writeFileSync(PAGE_TEMPLATES_FILE, compilePageTemplates());
process.stdout.write(`wrote ${PAGE_TEMPLATES_FILE}\n`);
