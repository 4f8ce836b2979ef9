import { randomBytes } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import { enrolAuthenticatorApp } from '../../src/customers/second-factors.ts';
import { createTestCustomer, type TestCustomer, type TestPassbook } from './passbook.ts';

/**
 * Customers with two-step verification on, and the codes their authenticator app would show. Each
 * time-step's code works once per customer, so the next code is always one not used yet: the
 * current step's, or the next one's (within the one step of drift Passbook allows), waiting for
 * the clock when both are spent.
 */

export interface TwoStepCustomer extends TestCustomer {
  authenticatorSecret: Buffer;
  recoveryCodes: string[];
}

const PERIOD_MS = 30_000;
const lastStep = new WeakMap<Buffer, number>();

export async function createTwoStepCustomer(passbook: TestPassbook, name?: string): Promise<TwoStepCustomer> {
  const customer = await createTestCustomer(passbook.knex, name);
  const authenticatorSecret = randomBytes(20);
  const recoveryCodes = await enrolAuthenticatorApp(
    passbook.knex,
    passbook.cipher,
    customer.id,
    authenticatorSecret,
  );
  return { ...customer, authenticatorSecret, recoveryCodes };
}

export function codeAtStep(secret: Buffer, step: number): string {
  const buffer = secret.buffer.slice(secret.byteOffset, secret.byteOffset + secret.byteLength);
  return TOTP.generate({ secret: new Secret({ buffer }), timestamp: step * PERIOD_MS + 1 });
}

/** A code the customer's authenticator app shows now that Passbook has not yet accepted. */
export async function nextAuthenticatorCode(secret: Buffer): Promise<string> {
  for (;;) {
    const current = Math.floor(Date.now() / PERIOD_MS);
    const step = Math.max(current, (lastStep.get(secret) ?? -Infinity) + 1);
    if (step <= current + 1) {
      lastStep.set(secret, step);
      return codeAtStep(secret, step);
    }
    await new Promise((resolve) => setTimeout(resolve, PERIOD_MS - (Date.now() % PERIOD_MS) + 50));
  }
}
