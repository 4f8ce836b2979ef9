import path from 'node:path';
import { envReader, type Env } from '../common/env.ts';

/**
 * Settle Up's settings, from the environment and nowhere else. Like any app, it knows the bank
 * only by its issuer URL, its API's URL, the client id the bank gave it and its own key, whose
 * public half the bank has registered.
 */

export interface SettleUpConfig {
  port: number;
  /** Where people reach Settle Up; the redirect URI registered at the bank is this + /callback. */
  baseUrl: string;
  /** The bank's OpenID Connect issuer (Passbook). */
  issuer: string;
  bankApiUrl: string;
  clientId: string;
  /** Settle Up's private signing key (a JWK); its public JWK set is written beside it. */
  keyFile: string;
}

export class SettleUpConfigError extends Error {
  override name = 'SettleUpConfigError';
}

const DEFAULT_KEY_FILE = '.data/settle-up-key.json';

/** Where Settle Up's key is kept; needed before the bank has registered the app. */
export function settleUpKeyFile(env: Env = process.env): string {
  return path.resolve(env.SETTLE_UP_KEY_FILE || DEFAULT_KEY_FILE);
}

const CLIENT_ID =
  'the client id the bank gave Settle Up when it registered its public keys (the .jwks.json beside SETTLE_UP_KEY_FILE)';

export function loadSettleUpConfig(env: Env = process.env): SettleUpConfig {
  const read = envReader(env, SettleUpConfigError);
  const port = read.port('PORT', 4100);
  return {
    port,
    baseUrl: read.url('BASE_URL', `http://localhost:${port}`),
    issuer: read.url('OIDC_ISSUER', 'http://localhost:3000'),
    bankApiUrl: read.url('BANK_API_URL', 'http://localhost:3001'),
    clientId: read.required('OIDC_CLIENT_ID', CLIENT_ID),
    keyFile: settleUpKeyFile(env),
  };
}
