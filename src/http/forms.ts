import { bodyParser } from '@koa/bodyparser';
import type { Context, Middleware } from 'koa';

/** Parses the bank's HTML forms: urlencoded only, and small, so an oversize body is refused (413). */
export function formBodies(): Middleware {
  return bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
}

/** A form field as a string; a missing or repeated field reads as empty. */
export function formField(ctx: Context, name: string): string {
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}

/** A field that may repeat, such as ticked checkboxes: every string value, in order. */
export function formFields(ctx: Context, name: string): string[] {
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}
