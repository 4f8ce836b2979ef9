import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { readMetricsListener, type MetricsListener } from './metrics/listener.ts';
import { readDatabaseTimeouts, type DatabaseTimeouts } from './db/timeouts.ts';

/**
 * The only reader of process.env. Everything else receives a validated, typed Config.
 * A bad variable stops start-up with one line naming it (ConfigError).
 */

export type Environment = 'development' | 'production' | 'test';

export interface Lifetimes {
  /** Seconds an access token lives. */
  accessToken: number;
  /** Seconds an authorization code lives. */
  authorizationCode: number;
  /** Seconds a refresh token lives from its last use (sliding). */
  refreshToken: number;
  /** Seconds after the first sign-in past which a refresh token is never renewed. */
  refreshTokenMaxAge: number;
  /** Seconds a bank session lives at most. */
  sessionMaxAge: number;
  /** Seconds of inactivity after which a bank session ends and the password is asked again. */
  sessionIdleTimeout: number;
  /** Seconds a sign-in or consent screen may stay open. */
  interaction: number;
}

/** How many failures within `window` seconds lock a key, and for how long (seconds). */
export interface ThrottleRule {
  maxFailures: number;
  window: number;
  lock: number;
  /** Set when each lock in a row lasts twice as long as the last, up to this many seconds. */
  maxLock?: number;
}

/** The limits on guessing: per username (known or not), per client address, per app's secret. */
export interface ThrottlePolicy {
  username: ThrottleRule;
  address: ThrottleRule;
  client: ThrottleRule;
}

export interface Config {
  env: Environment;
  port: number;
  /** The issuer identifier: scheme, host, optional port and path, no trailing slash. */
  issuer: string;
  /** Unset means: start the embedded PostgreSQL under dataDir. */
  databaseUrl: string | undefined;
  /** How long to wait for the database before answering 503 (DATABASE_*_TIMEOUT_MS). */
  databaseTimeouts: DatabaseTimeouts;
  /** Secrets that sign cookies, newest first. Unset (development only) means generated once and stored. */
  cookieKeys: string[] | undefined;
  /**
   * Keys (32 bytes each) that encrypt data at rest, newest first: the first encrypts, every one
   * still decrypts. Unset (development and tests only) means generated once and stored.
   */
  dataEncryptionKeys: Buffer[] | undefined;
  /**
   * DPOP_NONCE_SECRET (32 bytes): what the DPoP nonces Passbook hands out are made from, the same
   * on every node. Unset means derived from the data encryption key, which every node shares.
   */
  dpopNonceSecret: Buffer | undefined;
  trustProxy: boolean;
  logLevel: string;
  /** Seed the demo customer and app on start. */
  seedDemo: boolean;
  dataDir: string;
  embeddedPostgresPort: number;
  /** How often expired rows are purged, in seconds; 0 turns the timer off. */
  purgeIntervalSeconds: number;
  /** Days an activity-log event is kept; the purge removes older ones. */
  auditRetentionDays: number;
  /** Seconds a shutdown waits for requests in flight before closing their connections. */
  shutdownTimeoutSeconds: number;
  throttle: ThrottlePolicy;
  lifetimes: Lifetimes;
  /** How often each process re-reads the signing keys, in seconds (KEY_REFRESH_INTERVAL). */
  keyRefreshIntervalSeconds: number;
  /**
   * TOKEN_CACHE_MAX_AGE: seconds a process keeps a copy of a live access token it has looked up
   * (src/oidc/storage/live-tokens.ts), at most; any change to the token or its grant ends the copy
   * on every node at once. 0 turns the cache off.
   */
  tokenCacheMaxAgeSeconds: number;
  /** Seconds a key made by `keys:rotate` waits, published, before it signs (KEY_ACTIVATION_DELAY). */
  keyActivationDelaySeconds: number;
  /**
   * The bank's internal apps that may receive back-channel logout tokens although their host is
   * loopback, private or otherwise special-use (see src/oidc/backchannel-logout.ts): exact host
   * names or IP addresses, lower-case, IPv6 without brackets.
   */
  backchannelLogoutAllowedHosts: string[];
  /** METRICS_HOST:METRICS_PORT, where GET /metrics is served (docs/metrics.md); undefined when off. */
  metrics: MetricsListener | undefined;
  /**
   * BANK_API_URL: the bank API's base URL, as apps call it. It is the resource indicator (RFC 8707)
   * of payment tokens, their `aud`, and where the consent screen looks up the customer's accounts.
   */
  bankApiUrl: string;
  /** PAYMENT_MAX_AMOUNT: the most one payment may move, in euros with two decimals ("10000.00"). */
  paymentMaxAmount: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

const ENVIRONMENTS: readonly Environment[] = ['development', 'production', 'test'];

function readEnvironment(env: Env): Environment {
  const value = env.NODE_ENV ?? 'development';
  if (!(ENVIRONMENTS as readonly string[]).includes(value)) {
    throw new ConfigError(
      `NODE_ENV must be one of ${ENVIRONMENTS.join(', ')} (got ${JSON.stringify(value)})`,
    );
  }
  return value as Environment;
}

function readInteger(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw))
    throw new ConfigError(`${name} must be a whole number (got ${JSON.stringify(raw)})`);
  const value = Number(raw);
  if (value < min || value > max) {
    throw new ConfigError(`${name} must be between ${min} and ${max} (got ${value})`);
  }
  return value;
}

function readBoolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false (got ${JSON.stringify(raw)})`);
}

function readIssuer(env: Env, port: number): string {
  const raw = env.ISSUER ?? `http://localhost:${port}`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`ISSUER must be an absolute URL (got ${JSON.stringify(raw)})`);
  }
  const local = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
    throw new ConfigError(
      `ISSUER must use https (http is allowed only for localhost; got ${JSON.stringify(raw)})`,
    );
  }
  if (url.search || url.hash) {
    throw new ConfigError(`ISSUER must not have a query or fragment (got ${JSON.stringify(raw)})`);
  }
  return url.href.replace(/\/$/, '');
}

function readDatabaseUrl(env: Env): string | undefined {
  const raw = env.DATABASE_URL;
  if (raw === undefined || raw === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('DATABASE_URL must be a postgres:// URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError('DATABASE_URL must be a postgres:// URL');
  }
  return raw;
}

function readCookieKeys(env: Env): string[] | undefined {
  const raw = env.COOKIE_KEYS;
  if (raw === undefined || raw === '') return undefined;
  const keys = raw.split(',').map((key) => key.trim());
  if (keys.some((key) => key.length < 32)) {
    throw new ConfigError(
      'COOKIE_KEYS must be a comma-separated list of secrets of at least 32 characters each',
    );
  }
  return keys;
}

const DATA_KEY_HINT =
  "32 random bytes in base64 or base64url, comma-separated when rotating, newest first; make one with: node -e \"console.log(require('crypto').randomBytes(32).toString('base64url'))\"";

function readDataEncryptionKeys(env: Env): Buffer[] | undefined {
  const raw = env.DATA_ENCRYPTION_KEY;
  if (raw === undefined || raw === '') return undefined;
  return raw.split(',').map((entry) => {
    // Either base64 alphabet, so that `openssl rand -base64 32` works too.
    const text = entry.trim().replace(/=+$/, '').replaceAll('+', '-').replaceAll('/', '_');
    const key = Buffer.from(text, 'base64url');
    // The round trip refuses stray characters that decoding would silently skip.
    if (key.length !== 32 || key.toString('base64url') !== text) {
      throw new ConfigError(`DATA_ENCRYPTION_KEY must be ${DATA_KEY_HINT}`);
    }
    return key;
  });
}

function readDpopNonceSecret(env: Env): Buffer | undefined {
  const raw = env.DPOP_NONCE_SECRET;
  if (raw === undefined || raw === '') return undefined;
  const text = raw.trim();
  const secret = Buffer.from(text, 'base64url');
  // The round trip refuses stray characters that decoding would silently skip.
  if (secret.length !== 32 || secret.toString('base64url') !== text) {
    throw new ConfigError(
      "DPOP_NONCE_SECRET must be 32 random bytes in base64url, the same on every node; make one with: node -e \"console.log(require('crypto').randomBytes(32).toString('base64url'))\"",
    );
  }
  return secret;
}

// Exact entries only: a wildcard or a network range would let in hosts nobody looked at.
function readHostList(env: Env, name: string, fallback: string[]): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  return raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const bare = entry.replace(/^\[(.*)\]$/, '$1');
      const url = /^[A-Za-z0-9.:-]+$/.test(bare)
        ? URL.parse(`http://${isIPv6(bare) ? `[${bare}]` : bare}/`)
        : null;
      if (!url || url.port !== '') {
        throw new ConfigError(
          `${name} must be a comma-separated list of host names or IP addresses, without scheme, port, wildcard or range (got ${JSON.stringify(entry)})`,
        );
      }
      return url.hostname.replace(/^\[(.*)\]$/, '$1');
    });
}

/** Where the local demo's apps listen: loopback, allowed by default outside production only. */
const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '::1'];

const DAY = 24 * 60 * 60;

function readThrottle(env: Env): ThrottlePolicy {
  const window = readInteger(env, 'SIGN_IN_FAILURE_WINDOW', 15 * 60, 10, DAY);
  const maxLock = readInteger(env, 'SIGN_IN_MAX_LOCK', 15 * 60, 1, DAY);
  return {
    username: {
      maxFailures: readInteger(env, 'SIGN_IN_MAX_FAILURES', 5, 1, 1000),
      window,
      lock: Math.min(maxLock, readInteger(env, 'SIGN_IN_LOCK', 60, 1, DAY)),
      maxLock,
    },
    address: {
      maxFailures: readInteger(env, 'SIGN_IN_MAX_FAILURES_PER_ADDRESS', 50, 1, 100_000),
      window,
      lock: readInteger(env, 'SIGN_IN_ADDRESS_LOCK', 15 * 60, 1, DAY),
    },
    client: {
      maxFailures: readInteger(env, 'CLIENT_AUTH_MAX_FAILURES', 100, 1, 100_000),
      window,
      lock: readInteger(env, 'CLIENT_AUTH_LOCK', 15 * 60, 1, DAY),
    },
  };
}

function readLifetimes(env: Env): Lifetimes {
  return {
    accessToken: readInteger(env, 'ACCESS_TOKEN_TTL', 600, 30, DAY),
    authorizationCode: readInteger(env, 'AUTHORIZATION_CODE_TTL', 60, 5, 600),
    refreshToken: readInteger(env, 'REFRESH_TOKEN_TTL', 30 * DAY, 60, 365 * DAY),
    refreshTokenMaxAge: readInteger(env, 'REFRESH_TOKEN_MAX_AGE', 365 * DAY, 60, 5 * 365 * DAY),
    sessionMaxAge: readInteger(env, 'SESSION_MAX_AGE', 12 * 60 * 60, 60, 30 * DAY),
    sessionIdleTimeout: readInteger(env, 'SESSION_IDLE_TIMEOUT', 15 * 60, 1, DAY),
    interaction: readInteger(env, 'INTERACTION_TTL', 30 * 60, 60, DAY),
  };
}

/** An absolute http(s) URL without query, fragment or trailing slash; https outside loopback. */
function readBankApiUrl(env: Env): string {
  const raw = env.BANK_API_URL || 'http://localhost:3001';
  const url = URL.parse(raw);
  const loopback = url !== null && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
    throw new ConfigError(
      `BANK_API_URL must be an http(s) URL without query or fragment (got ${JSON.stringify(raw)})`,
    );
  }
  if (url.protocol === 'http:' && !loopback) {
    throw new ConfigError(
      `BANK_API_URL must use https unless it is on localhost (got ${JSON.stringify(raw)})`,
    );
  }
  return url.href.replace(/\/$/, '');
}

function readPaymentMaxAmount(env: Env): string {
  const raw = env.PAYMENT_MAX_AMOUNT || '10000.00';
  if (!/^[1-9]\d{0,14}\.\d{2}$|^0\.(0[1-9]|[1-9]\d)$/.test(raw)) {
    throw new ConfigError(
      `PAYMENT_MAX_AMOUNT must be a positive amount with two decimals, like 10000.00 (got ${JSON.stringify(raw)})`,
    );
  }
  return raw;
}

/** Defaults that differ by program: the CLI logs only warnings unless LOG_LEVEL says otherwise. */
export interface ConfigDefaults {
  logLevel?: string;
}

export function loadConfig(env: Env = process.env, defaults: ConfigDefaults = {}): Config {
  const nodeEnv = readEnvironment(env);
  const port = readInteger(env, 'PORT', 3000, 0, 65535);
  const databaseUrl = readDatabaseUrl(env);
  const config: Config = {
    env: nodeEnv,
    port,
    issuer: readIssuer(env, port),
    databaseUrl,
    databaseTimeouts: readDatabaseTimeouts(env, (message) => new ConfigError(message)),
    cookieKeys: readCookieKeys(env),
    dataEncryptionKeys: readDataEncryptionKeys(env),
    dpopNonceSecret: readDpopNonceSecret(env),
    trustProxy: readBoolean(env, 'TRUST_PROXY', false),
    logLevel: env.LOG_LEVEL || defaults.logLevel || (nodeEnv === 'test' ? 'silent' : 'info'),
    // A newcomer's laptop (development, embedded database) gets the demo customer and app.
    seedDemo: readBoolean(env, 'SEED_DEMO', nodeEnv === 'development' && !databaseUrl),
    dataDir: env.DATA_DIR || '.data',
    embeddedPostgresPort: readInteger(env, 'EMBEDDED_POSTGRES_PORT', 54329, 1024, 65535),
    purgeIntervalSeconds: readInteger(env, 'PURGE_INTERVAL', 300, 0, DAY),
    auditRetentionDays: readInteger(env, 'AUDIT_RETENTION_DAYS', 400, 1, 100 * 365),
    shutdownTimeoutSeconds: readInteger(env, 'SHUTDOWN_TIMEOUT', 10, 0, 600),
    throttle: readThrottle(env),
    lifetimes: readLifetimes(env),
    keyRefreshIntervalSeconds: readInteger(env, 'KEY_REFRESH_INTERVAL', 60, 1, 3600),
    tokenCacheMaxAgeSeconds: readInteger(env, 'TOKEN_CACHE_MAX_AGE', 30, 0, 300),
    keyActivationDelaySeconds: readInteger(env, 'KEY_ACTIVATION_DELAY', 3600, 0, 30 * DAY),
    backchannelLogoutAllowedHosts: readHostList(
      env,
      'BACKCHANNEL_LOGOUT_ALLOWED_HOSTS',
      nodeEnv === 'production' ? [] : LOOPBACK_HOSTS,
    ),
    metrics: readMetricsListener(env, nodeEnv === 'test' ? 0 : 9464, (message) => new ConfigError(message)),
    bankApiUrl: readBankApiUrl(env),
    paymentMaxAmount: readPaymentMaxAmount(env),
  };
  if (config.env === 'production') {
    if (!config.databaseUrl) throw new ConfigError('DATABASE_URL is required when NODE_ENV=production');
    if (!config.cookieKeys) throw new ConfigError('COOKIE_KEYS is required when NODE_ENV=production');
    if (!config.dataEncryptionKeys) {
      throw new ConfigError(`DATA_ENCRYPTION_KEY is required when NODE_ENV=production (${DATA_KEY_HINT})`);
    }
    if (config.seedDemo) throw new ConfigError('SEED_DEMO must not be set when NODE_ENV=production');
  }
  return config;
}

/** A fresh secret suitable for COOKIE_KEYS. */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}
