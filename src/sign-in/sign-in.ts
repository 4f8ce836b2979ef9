import type { Knex } from '../db/knex.ts';
import type { AuditRecorder, RequestOrigin } from '../audit/events.ts';
import type { ThrottlePolicy } from '../config.ts';
import { findCustomerById, verifyCredentials } from '../customers/customers.ts';
import {
  addressKey,
  clearKey,
  recordFailure,
  standing,
  usernameKey,
  type Refusal,
  type Standing,
} from './throttle.ts';

/**
 * The one way a customer signs in, whichever door they use: an app's sign-in screen
 * (src/interactions/) or the bank's own account pages (src/account-pages/). It owns the password
 * check, the second step for customers with two-step verification, the limits on guessing
 * (throttle.ts), what the customer is told when a step fails, and what a failure leaves in their
 * activity. The doors own only their pages.
 */

/** How a customer proved who they are, in RFC 8176 words. */
const AMR = {
  password: ['pwd'],
  passwordAndCode: ['pwd', 'otp', 'mfa'],
} as const;

export interface CodeCheck {
  ok: boolean;
  method?: 'otp' | 'recovery';
  /** Recovery codes left after this one. */
  remaining?: number;
}

/** The customer's second factors, as the sign-in needs them (src/customers/second-factors.ts). */
export interface SecondFactorCheck {
  hasAuthenticatorApp(customerId: string): Promise<boolean>;
  verifyCode(customerId: string, code: string): Promise<CodeCheck>;
}

export interface PasswordAttempt {
  username: string;
  password: string;
  /** The app the customer is signing in for; unset on the account pages. */
  clientId?: string | undefined;
  origin: RequestOrigin;
}

export interface CodeAttempt {
  customerId: string;
  code: string;
  clientId?: string | undefined;
  origin: RequestOrigin;
}

export type SignInStep =
  /** Signed in: the door starts the session with this amr. */
  | { kind: 'signed_in'; customerId: string; amr: string[]; recoveryCodesLeft?: number }
  /** The password was right; the customer has two-step verification and must give a code. */
  | { kind: 'code_needed'; customerId: string }
  /** Refused: the form answers `status` with `message` (and Retry-After when throttled). */
  | { kind: 'refused'; status: number; message: string; retryAfterSeconds?: number };

const WRONG_CREDENTIALS = 'The username or password is not right.';
const WRONG_CODE = 'That code is not right, or it was already used. Try the next one.';

function tooManyAttempts({ retryAfterSeconds }: Refusal): string {
  const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
  return `Too many attempts. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`;
}

function refused(wait: Refusal): SignInStep {
  return {
    kind: 'refused',
    status: 429,
    message: tooManyAttempts(wait),
    retryAfterSeconds: wait.retryAfterSeconds,
  };
}

/**
 * What a door shows for a refused step: the message and status, with `Retry-After` set on the
 * answer when the refusal is a pause.
 */
export function answerRefusal(
  answer: { set(header: string, value: string): void },
  step: SignInStep & { kind: 'refused' },
): { error: string; status: number } {
  if (step.retryAfterSeconds) answer.set('Retry-After', String(step.retryAfterSeconds));
  return { error: step.message, status: step.status };
}

export interface SignIn {
  /** The first step: username and password. */
  withPassword(attempt: PasswordAttempt): Promise<SignInStep>;
  /** The second step, or a step-up of a signed-in session: a 6-digit code or a recovery code. */
  withCode(attempt: CodeAttempt): Promise<SignInStep>;
  /** Whether the customer can give a second factor at all. */
  hasSecondFactor(customerId: string): Promise<boolean>;
}

export interface SignInDependencies {
  knex: Knex;
  audit: AuditRecorder;
  throttle: ThrottlePolicy;
  secondFactors: SecondFactorCheck;
  /** The password check; replaceable so that a test can count how often it runs. */
  checkPassword?: typeof verifyCredentials;
}

export function signInService({
  knex,
  audit,
  throttle,
  secondFactors,
  checkPassword = verifyCredentials,
}: SignInDependencies): SignIn {
  /**
   * Counts a failed step against the username and the address, the same work for a real name as
   * for an unknown one; the activity entries are written off the request path.
   */
  async function failed(
    username: string,
    customerId: string | undefined,
    attempt: { clientId?: string | undefined; origin: RequestOrigin },
  ): Promise<void> {
    const [byName] = await Promise.all([
      recordFailure(knex, usernameKey(username), throttle.username),
      attempt.origin.ip ? recordFailure(knex, addressKey(attempt.origin.ip), throttle.address) : undefined,
    ]);
    if (!customerId) return;
    audit.record({ customerId, type: 'sign_in_failed', clientId: attempt.clientId, ...attempt.origin });
    if (byName.locked) {
      audit.record({
        customerId,
        type: 'sign_in_paused',
        clientId: attempt.clientId,
        ...attempt.origin,
        detail: { failures: byName.locked.afterFailures, seconds: byName.locked.seconds },
      });
    }
  }

  /**
   * A success resets the username's failures. Most customers have none on record, and then
   * there is nothing to delete; a failure counted meanwhile by a request at the same time is kept.
   */
  async function clearRecorded(throttled: Standing, key: string): Promise<void> {
    if (throttled.recorded.has(key)) await clearKey(knex, key);
  }

  function keysFor(username: string, origin: RequestOrigin): string[] {
    return [usernameKey(username), ...(origin.ip ? [addressKey(origin.ip)] : [])];
  }

  return {
    async withPassword(attempt) {
      const { username, password, origin } = attempt;
      // While refused, nothing is verified: the right password is refused too, and no hash is computed.
      const throttled = await standing(knex, keysFor(username, origin));
      if (throttled.refusal) return refused(throttled.refusal);
      const check = await checkPassword(knex, username, password);
      if (!check.verified) {
        await failed(username, check.knownCustomerId, attempt);
        return { kind: 'refused', status: 401, message: WRONG_CREDENTIALS };
      }
      if (await secondFactors.hasAuthenticatorApp(check.customerId)) {
        return { kind: 'code_needed', customerId: check.customerId };
      }
      await clearRecorded(throttled, usernameKey(username));
      return { kind: 'signed_in', customerId: check.customerId, amr: [...AMR.password] };
    },

    async withCode(attempt) {
      const customer = await findCustomerById(knex, attempt.customerId);
      if (!customer) return { kind: 'refused', status: 400, message: WRONG_CODE };
      const throttled = await standing(knex, keysFor(customer.username, attempt.origin));
      if (throttled.refusal) return refused(throttled.refusal);
      const check = await secondFactors.verifyCode(customer.id, attempt.code.replace(/\s+/g, ''));
      if (!check.ok) {
        await failed(customer.username, customer.id, attempt);
        return { kind: 'refused', status: 401, message: WRONG_CODE };
      }
      await clearRecorded(throttled, usernameKey(customer.username));
      if (check.method === 'recovery') {
        audit.record({
          customerId: customer.id,
          type: 'recovery_code_used',
          clientId: attempt.clientId,
          ...attempt.origin,
          detail: { remaining: check.remaining ?? 0 },
        });
      }
      return {
        kind: 'signed_in',
        customerId: customer.id,
        amr: [...AMR.passwordAndCode],
        ...(check.method === 'recovery' ? { recoveryCodesLeft: check.remaining ?? 0 } : {}),
      };
    },

    hasSecondFactor(customerId) {
      return secondFactors.hasAuthenticatorApp(customerId);
    },
  };
}
