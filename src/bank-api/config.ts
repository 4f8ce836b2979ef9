/**
 * The bank API's settings, read from the environment here and nowhere else. A bad or missing
 * variable stops start-up with one line naming it (BankApiConfigError).
 */

export interface BankApiConfig {
  port: number;
  /** Passbook's issuer identifier; introspection answers must name it. */
  issuer: string;
  introspectionEndpoint: string;
  /** The bank API's own registration at Passbook, as a resource server. */
  clientId: string;
  clientSecret: string;
  /** How long to wait for Passbook before answering 503. */
  introspectionTimeoutMs: number;
  /** Unset when the caller hands over a database connection of its own (the demo, the tests). */
  databaseUrl: string | undefined;
  logLevel: string;
}

export class BankApiConfigError extends Error {
  override name = 'BankApiConfigError';
}

type Env = Record<string, string | undefined>;

function readPort(env: Env): number {
  const raw = env.PORT || '3001';
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) {
    throw new BankApiConfigError(`PORT must be a port number (got ${JSON.stringify(raw)})`);
  }
  return port;
}

function readUrl(env: Env, name: string, fallback: string): string {
  const raw = env[name] || fallback;
  const url = URL.parse(raw);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new BankApiConfigError(`${name} must be an http(s) URL (got ${JSON.stringify(raw)})`);
  }
  const local = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol === 'http:' && !local) {
    throw new BankApiConfigError(
      `${name} must use https unless it is on localhost (got ${JSON.stringify(raw)})`,
    );
  }
  return url.href.replace(/\/$/, '');
}

function readRequired(env: Env, name: string, meaning: string): string {
  const value = env[name];
  if (!value) throw new BankApiConfigError(`${name} is required: ${meaning}`);
  return value;
}

function readTimeout(env: Env): number {
  const raw = env.INTROSPECTION_TIMEOUT_MS || '3000';
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 50 || value > 60_000) {
    throw new BankApiConfigError(
      `INTROSPECTION_TIMEOUT_MS must be between 50 and 60000 (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

function readDatabaseUrl(env: Env): string | undefined {
  const raw = env.DATABASE_URL;
  if (!raw) return undefined;
  const protocol = URL.parse(raw)?.protocol;
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new BankApiConfigError('DATABASE_URL must be a postgres:// URL');
  }
  return raw;
}

export function loadBankApiConfig(env: Env = process.env): BankApiConfig {
  const issuer = readUrl(env, 'ISSUER', 'http://localhost:3000');
  return {
    port: readPort(env),
    issuer,
    introspectionEndpoint: readUrl(env, 'INTROSPECTION_ENDPOINT', `${issuer}/token/introspection`),
    clientId: readRequired(env, 'CLIENT_ID', "the bank API's client_id at Passbook (a resource server)"),
    clientSecret: readRequired(env, 'CLIENT_SECRET', "the bank API's client_secret at Passbook"),
    introspectionTimeoutMs: readTimeout(env),
    databaseUrl: readDatabaseUrl(env),
    logLevel: env.LOG_LEVEL || 'info',
  };
}

/** The database a stand-alone bank API connects to. */
export function requireDatabaseUrl(config: BankApiConfig): string {
  if (!config.databaseUrl) {
    throw new BankApiConfigError('DATABASE_URL is required: the PostgreSQL database Passbook uses');
  }
  return config.databaseUrl;
}
