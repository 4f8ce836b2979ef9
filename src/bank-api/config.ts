import { readMetricsListener, type MetricsListener } from '../metrics/listener.ts';
import { readDatabaseTimeouts, type DatabaseTimeouts } from '../db/timeouts.ts';

/**
 * The bank API's settings, read from the environment here and nowhere else. A bad or missing
 * variable stops start-up with one line naming it (BankApiConfigError).
 */

export interface BankApiConfig {
  port: number;
  /**
   * BANK_API_URL: the API's own base URL as apps call it (behind any proxy). Payment tokens name
   * it as their audience, and DPoP proofs sign it as their `htu`. Passbook is given the same value.
   */
  publicUrl: string;
  /** Passbook's issuer identifier; introspection answers must name it. */
  issuer: string;
  introspectionEndpoint: string;
  /** The bank API's own registration at Passbook, as a resource server. */
  clientId: string;
  clientSecret: string;
  /** How long to wait for Passbook before answering 503. */
  introspectionTimeoutMs: number;
  /**
   * BANK_API_DATABASE_URL: the bank API's own role on the database (docs/bank-api.md). Unset is
   * allowed here so that a test of the other settings needs none; starting the bank API needs it.
   */
  databaseUrl: string | undefined;
  /** How long to wait for the database before answering 503 (DATABASE_*_TIMEOUT_MS, as Passbook's). */
  databaseTimeouts: DatabaseTimeouts;
  logLevel: string;
  /** METRICS_HOST:METRICS_PORT, where GET /metrics is served (docs/metrics.md); undefined when off. */
  metrics: MetricsListener | undefined;
  /** NODE_ENV, as Passbook reads it: in development, logs on a terminal are printed for a person. */
  env: string;
  /** TRUST_PROXY: X-Forwarded-* and X-Request-Id come from a proxy the bank runs. */
  trustProxy: boolean;
  /** SHUTDOWN_TIMEOUT: seconds a shutdown waits for requests in flight. */
  shutdownTimeoutSeconds: number;
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

function readTrustProxy(env: Env): boolean {
  const raw = env.TRUST_PROXY || 'false';
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new BankApiConfigError(`TRUST_PROXY must be true or false (got ${JSON.stringify(raw)})`);
}

function readShutdownTimeout(env: Env): number {
  const raw = env.SHUTDOWN_TIMEOUT || '10';
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value > 600) {
    throw new BankApiConfigError(`SHUTDOWN_TIMEOUT must be between 0 and 600 (got ${JSON.stringify(raw)})`);
  }
  return value;
}

/**
 * DATABASE_URL is deliberately not read: it is Passbook's own, and falling back to it would
 * quietly give the bank API Passbook's role again, with its reach into customers' password hashes
 * and the signing keys. A deployment that still sets only DATABASE_URL stops with a line saying so.
 */
function readDatabaseUrl(env: Env): string | undefined {
  const raw = env.BANK_API_DATABASE_URL;
  if (!raw) return undefined;
  const protocol = URL.parse(raw)?.protocol;
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new BankApiConfigError('BANK_API_DATABASE_URL must be a postgres:// URL');
  }
  return raw;
}

export function loadBankApiConfig(env: Env = process.env): BankApiConfig {
  const issuer = readUrl(env, 'ISSUER', 'http://localhost:3000');
  const port = readPort(env);
  return {
    port,
    publicUrl: readUrl(env, 'BANK_API_URL', `http://localhost:${port}`),
    issuer,
    introspectionEndpoint: readUrl(env, 'INTROSPECTION_ENDPOINT', `${issuer}/token/introspection`),
    clientId: readRequired(env, 'CLIENT_ID', "the bank API's client_id at Passbook (a resource server)"),
    clientSecret: readRequired(env, 'CLIENT_SECRET', "the bank API's client_secret at Passbook"),
    introspectionTimeoutMs: readTimeout(env),
    databaseUrl: readDatabaseUrl(env),
    databaseTimeouts: readDatabaseTimeouts(env, (message) => new BankApiConfigError(message)),
    logLevel: env.LOG_LEVEL || 'info',
    metrics: readMetricsListener(env, 9465, (message) => new BankApiConfigError(message)),
    env: env.NODE_ENV || 'development',
    trustProxy: readTrustProxy(env),
    shutdownTimeoutSeconds: readShutdownTimeout(env),
  };
}

/** The database the bank API connects to, as its own role. */
export function requireDatabaseUrl(config: BankApiConfig): string {
  if (!config.databaseUrl) {
    throw new BankApiConfigError(
      "BANK_API_DATABASE_URL is required: the bank API's own role on the database, not Passbook's DATABASE_URL (docs/bank-api.md)",
    );
  }
  return config.databaseUrl;
}
