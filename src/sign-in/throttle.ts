import { createHash } from 'node:crypto';
import type { Knex } from '../db/knex.ts';
import { forReading, forWriting } from '../db/request-transaction.ts';
import type { ThrottlePolicy, ThrottleRule } from '../config.ts';

/**
 * Owner of `sign_in_throttle`: failed attempts counted in PostgreSQL, so that every Passbook
 * process sees the same counts and a restart forgets nothing. Three kinds of key:
 *
 * - a username, known or not (hashed, so that a password typed into the username field is not
 *   kept): after `maxFailures` within `window`, it is refused for `lock`, doubling with each lock
 *   in a row up to `maxLock`. A success resets it. Whoever knows a customer's username can delay
 *   them by at most `maxLock` at a time, never lock them out for good.
 * - a client address: after `maxFailures` within `window`, refused for `lock` (no doubling).
 * - an app's client_id at the token endpoint: the same, for failed client authentication.
 *
 * While a key is refused, nothing is verified at all: no argon2id hash is computed, so guessing
 * cannot burn the CPU either.
 */

const TABLE = 'sign_in_throttle';

export type ThrottleKey = string;

export function usernameKey(username: string): ThrottleKey {
  const digest = createHash('sha256').update(username.trim().toLowerCase()).digest('base64url');
  return `user:${digest}`;
}

export function addressKey(ip: string): ThrottleKey {
  return `ip:${ip}`;
}

function clientKey(clientId: string): ThrottleKey {
  return `client:${createHash('sha256').update(clientId).digest('base64url')}`;
}

export interface Refusal {
  /** Whole seconds until the key is accepted again (at least 1). */
  retryAfterSeconds: number;
}

interface KeyRow {
  key: ThrottleKey;
  locked_until: Date | null;
}

/** Where these keys stand: refused now or not, and which have failures or a lock on record. */
export interface Standing {
  /** The longest wait among the keys, or undefined if none is refused now. */
  refusal: Refusal | undefined;
  /** The keys a success has anything to clear for (`clearKey`). */
  recorded: ReadonlySet<ThrottleKey>;
}

export async function standing(knex: Knex, keys: ThrottleKey[], now = new Date()): Promise<Standing> {
  const db = await forReading(knex);
  const rows = await db(TABLE).whereIn('key', keys).select<KeyRow[]>('key', 'locked_until');
  const until = Math.max(
    0,
    ...rows.map((row) => row.locked_until?.getTime() ?? 0).filter((time) => time > now.getTime()),
  );
  return {
    refusal: until
      ? { retryAfterSeconds: Math.max(1, Math.ceil((until - now.getTime()) / 1000)) }
      : undefined,
    recorded: new Set(rows.map((row) => row.key)),
  };
}

export interface FailureOutcome {
  /** Set when this failure locked the key: for how long, and how many failures led to it. */
  locked?: { seconds: number; afterFailures: number };
}

interface CountRow {
  failures: number;
  lockouts: number;
}

/** Seconds the next lock lasts: the rule's lock, doubled for each lock before it in a row. */
export function lockSeconds(rule: ThrottleRule, previousLockouts: number): number {
  if (rule.maxLock === undefined) return rule.lock;
  return Math.min(rule.maxLock, rule.lock * 2 ** Math.min(previousLockouts, 30));
}

/**
 * Counts one failure for the key, and locks it when this failure reaches the rule's limit. Two
 * failures counted at once are both counted, and only one of them locks. Within a request the
 * count commits with the request's other writes (its own statements in a savepoint).
 */
export async function recordFailure(
  knex: Knex,
  key: ThrottleKey,
  rule: ThrottleRule,
  now = new Date(),
): Promise<FailureOutcome> {
  const windowStart = new Date(now.getTime() - rule.window * 1000);
  // A key whose last lock ended long ago starts its doubling afresh.
  const lockoutsForgottenBefore = new Date(now.getTime() - (rule.maxLock ?? rule.lock) * 4 * 1000);
  const db = await forWriting(knex);
  return db.transaction(async (trx) => {
    const counted = await trx.raw<{ rows: CountRow[] }>(
      `INSERT INTO ${TABLE} AS t (key, failures, window_started_at, updated_at)
       VALUES (?, 1, ?, ?)
       ON CONFLICT (key) DO UPDATE SET
         failures = CASE WHEN t.window_started_at <= ? THEN 1 ELSE t.failures + 1 END,
         window_started_at = CASE WHEN t.window_started_at <= ? THEN EXCLUDED.window_started_at
                                  ELSE t.window_started_at END,
         lockouts = CASE WHEN t.locked_until IS NOT NULL AND t.locked_until <= ? THEN 0
                         ELSE t.lockouts END,
         updated_at = EXCLUDED.updated_at
       RETURNING failures, lockouts`,
      [key, now, now, windowStart, windowStart, lockoutsForgottenBefore],
    );
    const row = counted.rows[0];
    if (!row || row.failures < rule.maxFailures) return {};
    const seconds = lockSeconds(rule, row.lockouts);
    const locked = await trx(TABLE)
      .where({ key })
      .andWhere('failures', '>=', rule.maxFailures)
      .update({
        failures: 0,
        window_started_at: now,
        locked_until: new Date(now.getTime() + seconds * 1000),
        lockouts: row.lockouts + 1,
      });
    return locked ? { locked: { seconds, afterFailures: row.failures } } : {};
  });
}

/** Forgets a key's failures and locks: after a success, or when an operator unlocks it. */
export async function clearKey(knex: Knex, key: ThrottleKey): Promise<boolean> {
  const db = await forWriting(knex);
  return (await db(TABLE).where({ key }).delete()) > 0;
}

/** The purge's task for this table (src/oidc/storage/purge.ts runs it under its lock). */
export function throttlePurgeTask(policy: ThrottlePolicy): (knex: Knex) => Promise<number> {
  return (knex) => purgeStaleThrottleRows(knex, policy);
}

/** Rows untouched for longer than any rule looks back carry nothing any more. */
async function purgeStaleThrottleRows(knex: Knex, policy: ThrottlePolicy, now = new Date()): Promise<number> {
  const longest = Math.max(
    ...[policy.username, policy.address, policy.client].map(
      (rule) => Math.max(rule.window, rule.maxLock ?? rule.lock) * 4,
    ),
  );
  return knex(TABLE)
    .where('updated_at', '<', new Date(now.getTime() - longest * 1000))
    .andWhere((where) => {
      void where.whereNull('locked_until').orWhere('locked_until', '<', now);
    })
    .delete();
}

/** The per-app limit on failed client authentication, for the provider's secret comparison. */
export function clientSecretGuard(knex: Knex, rule: ThrottleRule) {
  return {
    async refusal(clientId: string): Promise<number | undefined> {
      return (await standing(knex, [clientKey(clientId)])).refusal?.retryAfterSeconds;
    },
    async failed(clientId: string): Promise<void> {
      await recordFailure(knex, clientKey(clientId), rule);
    },
  };
}
