import type { AuditEventType, StoredAuditEvent } from '../audit/events.ts';

/** How the account pages put stored facts into words. Plain functions over plain data. */

const DATE_FORMAT = new Intl.DateTimeFormat('en-GB', {
  dateStyle: 'medium',
  timeStyle: 'short',
  timeZone: 'UTC',
});

export function formatWhen(date: Date | null | undefined): string {
  return date ? `${DATE_FORMAT.format(date)} UTC` : 'Never';
}

const BROWSERS: [RegExp, string][] = [
  [/Edg\//, 'Edge'],
  [/Firefox\//, 'Firefox'],
  [/Chrom(e|ium)\//, 'Chrome'],
  [/Safari\//, 'Safari'],
];
const SYSTEMS: [RegExp, string][] = [
  [/Android/, 'Android'],
  [/iPhone|iPad/, 'iOS'],
  [/Windows/, 'Windows'],
  [/Mac OS X|Macintosh/, 'macOS'],
  [/Linux/, 'Linux'],
];

/** "Firefox on Windows", from a user agent; "Unknown device" when it says nothing we recognise. */
export function describeDevice(userAgent: string | null | undefined): string {
  if (!userAgent) return 'Unknown device';
  const browser = BROWSERS.find(([pattern]) => pattern.test(userAgent))?.[1];
  const system = SYSTEMS.find(([pattern]) => pattern.test(userAgent))?.[1];
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? system ?? 'Unknown device';
}

const FACTOR_WORDING: Record<string, string> = {
  passkey: 'with your passkey',
  authenticator_app: 'with your authenticator app',
  recovery_code: 'with a recovery code',
};

/** "Settle Up: €25.00 to Jo Bloggs, approved with your authenticator app". */
function paymentApproved(app: string, detail: StoredAuditEvent['detail']): string {
  const amount = String(detail.amount ?? '');
  const money = detail.currency === 'EUR' ? `€${amount}` : `${amount} ${String(detail.currency ?? '')}`;
  const factor = typeof detail.factor === 'string' ? FACTOR_WORDING[detail.factor] : undefined;
  return `${app}: ${money} to ${String(detail.creditor ?? 'someone')}, approved ${factor ?? 'with two-step verification'}`;
}

const ACTIVITY: Record<AuditEventType, (app: string, detail: StoredAuditEvent['detail']) => string> = {
  sign_in_succeeded: () => 'Signed in',
  sign_in_failed: () => 'A sign-in failed: wrong password',
  signed_out: () => 'Signed out',
  session_ended: () => 'Signed out a session on another device',
  consent_given: (app) => `Allowed ${app} access`,
  consent_denied: (app) => `Refused ${app} access`,
  payment_approved: paymentApproved,
  app_revoked: (app) => `Disconnected ${app}`,
  refresh_token_reuse_detected: (app) => `Cut off ${app}: an old token of it was used again`,
  password_changed: () => 'Password changed',
  two_step_turned_on: () => 'Two-step verification turned on',
  two_step_turned_off: () => 'Two-step verification turned off',
  recovery_code_used: () => 'Recovery code used',
  recovery_codes_replaced: () => 'New recovery codes made',
  passkey_added: () => 'Passkey added',
  passkey_removed: () => 'Passkey removed',
  sign_in_paused: (_app, detail) =>
    `Sign-in paused after ${typeof detail.failures === 'number' ? detail.failures : 'several'} failed attempts`,
};

/** Events whose device and address the activity list shows: sign-ins and changes to security. */
const SHOWS_ORIGIN = new Set<AuditEventType>([
  'sign_in_succeeded',
  'sign_in_failed',
  'sign_in_paused',
  'password_changed',
  'two_step_turned_on',
  'two_step_turned_off',
  'recovery_code_used',
  'recovery_codes_replaced',
  'passkey_added',
  'passkey_removed',
]);

/** "Firefox on Windows, 203.0.113.7" for the events where it matters; empty otherwise. */
export function describeOrigin(event: StoredAuditEvent): string {
  return SHOWS_ORIGIN.has(event.type) ? `${describeDevice(event.user_agent)}, ${event.ip ?? ''}` : '';
}

export function describeActivity(event: StoredAuditEvent, appName: (clientId: string) => string): string {
  return ACTIVITY[event.type](event.client_id ? appName(event.client_id) : 'an app', event.detail);
}
