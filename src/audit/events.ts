import type { Knex } from '../db/knex.ts';

/**
 * Owner of `audit_events`: what happened to a customer's sign-ins, sessions and apps, written as
 * it happens and shown on the account pages. Never a password, code or token in here.
 */

const TABLE = 'audit_events';

export const AUDIT_EVENT_TYPES = [
  'sign_in_succeeded',
  'sign_in_failed',
  'signed_out',
  'session_ended',
  'consent_given',
  'consent_denied',
  'app_revoked',
  'refresh_token_reuse_detected',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export interface AuditEvent {
  customerId: string | undefined;
  type: AuditEventType;
  clientId?: string | undefined;
  ip?: string | undefined;
  userAgent?: string | undefined;
  detail?: Record<string, string | number | boolean>;
}

export interface StoredAuditEvent {
  type: AuditEventType;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  detail: Record<string, string | number | boolean>;
  created_at: Date;
}

const MAX_USER_AGENT = 512;

/** Where a request came from, as the activity log records it. */
export function requestOrigin(ctx: {
  ip: string;
  get(header: string): string;
}): Pick<AuditEvent, 'ip' | 'userAgent'> {
  return { ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined };
}

export async function recordEvent(knex: Knex, event: AuditEvent): Promise<void> {
  await knex(TABLE).insert({
    customer_id: event.customerId ?? null,
    type: event.type,
    client_id: event.clientId ?? null,
    ip: event.ip ?? null,
    user_agent: event.userAgent?.slice(0, MAX_USER_AGENT) ?? null,
    detail: event.detail ?? {},
  });
}

export async function recentEvents(knex: Knex, customerId: string, limit = 50): Promise<StoredAuditEvent[]> {
  return knex(TABLE)
    .where({ customer_id: customerId })
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(limit)
    .select('type', 'client_id', 'ip', 'user_agent', 'detail', 'created_at');
}
