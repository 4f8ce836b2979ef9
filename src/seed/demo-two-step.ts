import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from '../db/knex.ts';
import type { DataCipher } from '../crypto/data-cipher.ts';
import { createCustomer, findCustomerByUsername } from '../customers/customers.ts';
import { authenticatorAppMatches, enrolAuthenticatorApp } from '../customers/second-factors.ts';
import {
  base32Secret,
  groupedForTyping,
  newTotpSecret,
  otpauthUri,
  secretFromBase32,
} from '../customers/totp.ts';

/**
 * Development only: the demo's second customer, who signs in with an authenticator app. Its TOTP
 * secret is kept in <DATA_DIR>/demo-two-step.json (git-ignored, readable by its owner only), so
 * that every `npm run demo` prints the same secret and an authenticator app set up once keeps
 * working; the database holds it only encrypted, like every customer's. If the database lost
 * the enrolment (or has another secret), the customer is enrolled again with the file's secret.
 */

export const DEMO_TWO_STEP_CUSTOMER = {
  username: 'demo-2fa',
  password: 'passbook-demo-2fa',
  name: 'Sam Secure',
  email: 'sam.secure@example.com',
} as const;

const DEMO_TWO_STEP_FILE = 'demo-two-step.json';

export interface DemoTwoStep {
  username: string;
  password: string;
  /** Base32, in groups of four, for typing into an authenticator app. */
  secret: string;
  otpauthUri: string;
  file: string;
  /** Set only when the customer was enrolled now: their recovery codes, shown this once. */
  recoveryCodes?: string[];
}

function demoTwoStepFile(dataDir: string): string {
  return path.resolve(dataDir, DEMO_TWO_STEP_FILE);
}

async function savedSecret(file: string): Promise<Buffer | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { secret?: unknown };
    const secret = typeof parsed.secret === 'string' ? secretFromBase32(parsed.secret) : undefined;
    return secret?.length === 20 ? secret : undefined;
  } catch {
    // Missing or unreadable: a new secret is made and saved.
    return undefined;
  }
}

async function saveSecret(file: string, secret: Buffer): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  const content = { username: DEMO_TWO_STEP_CUSTOMER.username, secret: base32Secret(secret) };
  await writeFile(temporary, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, file);
}

export async function ensureDemoTwoStepCustomer(
  knex: Knex,
  cipher: DataCipher,
  dataDir: string,
): Promise<DemoTwoStep> {
  const customer =
    (await findCustomerByUsername(knex, DEMO_TWO_STEP_CUSTOMER.username)) ??
    (await createCustomer(knex, DEMO_TWO_STEP_CUSTOMER));
  const file = demoTwoStepFile(dataDir);
  let secret = await savedSecret(file);
  let recoveryCodes: string[] | undefined;
  if (!secret || !(await authenticatorAppMatches(knex, cipher, customer.id, secret))) {
    if (!secret) {
      secret = newTotpSecret();
      await saveSecret(file, secret);
    }
    recoveryCodes = await enrolAuthenticatorApp(knex, cipher, customer.id, secret);
  }
  return {
    username: DEMO_TWO_STEP_CUSTOMER.username,
    password: DEMO_TWO_STEP_CUSTOMER.password,
    secret: groupedForTyping(base32Secret(secret)),
    otpauthUri: otpauthUri(secret, DEMO_TWO_STEP_CUSTOMER.username),
    file,
    ...(recoveryCodes ? { recoveryCodes } : {}),
  };
}
