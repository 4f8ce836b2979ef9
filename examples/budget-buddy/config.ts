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

type Env = Record<string, string | undefined>;

function readUrl(env: Env, name: string, fallback: string): string {
  const raw = env[name] || fallback;
  const url = URL.parse(raw);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new BudgetBuddyConfigError(`${name} must be an http(s) URL (got ${JSON.stringify(raw)})`);
  }
  return url.href.replace(/\/$/, '');
}

function readRequired(env: Env, name: string): string {
  const value = env[name];
  if (!value)
    throw new BudgetBuddyConfigError(`${name} is required: the credentials the bank gave Budget Buddy`);
  return value;
}

export function loadBudgetBuddyConfig(env: Env = process.env): BudgetBuddyConfig {
  const rawPort = env.PORT || '4000';
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port > 65535) {
    throw new BudgetBuddyConfigError(`PORT must be a port number (got ${JSON.stringify(rawPort)})`);
  }
  return {
    port,
    baseUrl: readUrl(env, 'BASE_URL', `http://localhost:${port}`),
    issuer: readUrl(env, 'OIDC_ISSUER', 'http://localhost:3000'),
    bankApiUrl: readUrl(env, 'BANK_API_URL', 'http://localhost:3001'),
    clientId: readRequired(env, 'OIDC_CLIENT_ID'),
    clientSecret: readRequired(env, 'OIDC_CLIENT_SECRET'),
  };
}
