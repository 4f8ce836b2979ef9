import path from 'node:path';

/** The root of the checkout these tests belong to, wherever it was cloned. */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '../..');
