import type { Knex } from '../db/knex.ts';
import { afterCommit, forReading, forWriting } from '../db/request-transaction.ts';
import type { Logger } from '../log.ts';

/**
 * Owner of `audit_events`: what happened to a customer's sign-ins, sessions, apps and security
 * settings, written as
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
  'payment_approved',
  'app_revoked',
  'refresh_token_reuse_detected',
  'password_changed',
  'two_step_turned_on',
  'two_step_turned_off',
  'recovery_code_used',
  'recovery_codes_replaced',
  'passkey_added',
  'passkey_removed',
  'sign_in_paused',
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

export type RequestOrigin = Pick<AuditEvent, 'ip' | 'userAgent'>;

/** Where a request came from, as the activity log records it. */
export function requestOrigin(ctx: { ip: string; get(header: string): string }): RequestOrigin {
  return { ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined };
}

/** Records an event with the request's other writes: it is stored exactly when they are. */
export async function recordEvent(knex: Knex, event: AuditEvent): Promise<void> {
  await insertEvent(await forWriting(knex), event);
}

async function insertEvent(db: Knex, event: AuditEvent): Promise<void> {
  await db(TABLE).insert({
    customer_id: event.customerId ?? null,
    type: event.type,
    client_id: event.clientId ?? null,
    ip: event.ip ?? null,
    user_agent: event.userAgent?.slice(0, MAX_USER_AGENT) ?? null,
    detail: event.detail ?? {},
  });
}

/**
 * Records events off the request path: the answer never waits for the activity log, so a request
 * costs the same whether or not it has something to record (a failed sign-in for a real customer
 * must not take longer than one for an unknown name). Each write starts once the request's own
 * writes are committed, and not at all if they are rolled back, so the log never shows what did
 * not happen; it is a statement of its own, outside the request's transaction. A failed write is
 * logged, never the customer's problem; `drain` lets shutdown wait for the writes still under way.
 */
export interface AuditRecorder {
  record(event: AuditEvent): void;
  drain(): Promise<void>;
}

export function auditRecorder(knex: Knex, log: Logger): AuditRecorder {
  const pending = new Set<Promise<void>>();
  return {
    record(event) {
      void afterCommit(knex, () => {
        const write = insertEvent(knex, event)
          .catch((error: unknown) => log.warn({ err: error, type: event.type }, 'audit write failed'))
          .finally(() => pending.delete(write));
        pending.add(write);
      });
    },
    async drain() {
      await Promise.all(pending);
    },
  };
}

export async function recentEvents(knex: Knex, customerId: string, limit = 50): Promise<StoredAuditEvent[]> {
  const db = await forReading(knex);
  return db(TABLE)
    .where({ customer_id: customerId })
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(limit)
    .select('type', 'client_id', 'ip', 'user_agent', 'detail', 'created_at');
}

/**
 * The second factor the newest sign-in of this bank session used, as its sign_in_succeeded
 * event recorded it; undefined when none is recorded (yet).
 */
export async function sessionSecondFactor(
  knex: Knex,
  customerId: string,
  sessionUid: string,
): Promise<string | undefined> {
  const db = await forReading(knex);
  const row: { factor: string | null } | undefined = await db(TABLE)
    .where({ customer_id: customerId, type: 'sign_in_succeeded' })
    .andWhereRaw("detail->>'session' = ?", [sessionUid])
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .first(db.raw("detail->>'factor' as factor"));
  return row?.factor ?? undefined;
}

const PURGE_BATCH = 1000;

/**
 * The purge's task for this table (src/oidc/storage/purge.ts runs it under its lock): events
 * older than the retention go, a batch at a time on the created_at index, so that no statement
 * holds a long lock on the activity log while customers are writing to it.
 */
export function auditRetentionPurgeTask(retentionDays: number): (knex: Knex) => Promise<number> {
  return (knex) => purgeOldEvents(knex, retentionDays);
}

async function purgeOldEvents(knex: Knex, retentionDays: number, now = new Date()): Promise<number> {
  const cutOff = new Date(now.getTime() - retentionDays * 24 * 60 * 60 * 1000);
  let total = 0;
  for (;;) {
    const batch = knex(TABLE).select('id').where('created_at', '<', cutOff).limit(PURGE_BATCH);
    const deleted = await knex(TABLE).whereIn('id', batch).delete();
    total += deleted;
    if (deleted < PURGE_BATCH) return total;
  }
}
