import { envReader, type Env } from '../common/env.ts';

/**
 * Budget Buddy's settings, from the environment and nowhere else. Like any app, it knows the
 * bank only by its issuer URL, its API's URL and the client credentials the bank gave it.
 */

export interface BudgetBuddyConfig {
  port: number;
  /** Where people reach Budget Buddy; the redirect URI registered at the bank is this + /callback. */
  baseUrl: string;
  /** The bank's OpenID Connect issuer (Passbook). */
  issuer: string;
  bankApiUrl: string;
  clientId: string;
  clientSecret: string;
}

export class BudgetBuddyConfigError extends Error {
  override name = 'BudgetBuddyConfigError';
}

const CREDENTIALS = 'the credentials the bank gave Budget Buddy';

export function loadBudgetBuddyConfig(env: Env = process.env): BudgetBuddyConfig {
  const read = envReader(env, BudgetBuddyConfigError);
  const port = read.port('PORT', 4000);
  return {
    port,
    baseUrl: read.url('BASE_URL', `http://localhost:${port}`),
    issuer: read.url('OIDC_ISSUER', 'http://localhost:3000'),
    bankApiUrl: read.url('BANK_API_URL', 'http://localhost:3001'),
    clientId: read.required('OIDC_CLIENT_ID', CREDENTIALS),
    clientSecret: read.required('OIDC_CLIENT_SECRET', CREDENTIALS),
  };
}
