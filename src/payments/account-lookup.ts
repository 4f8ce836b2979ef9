import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK, type CryptoKey, type JWK, type KeyObject } from 'jose';

/**
 * Passbook's side of GET /consent/accounts on the bank API: the customer's accounts, with their
 * balances, for the payment consent screen. Passbook proves it is asking, and about whom, with a
 * JWT signed by its active ES256 signing key (typ `account-lookup+jwt`, one minute at most),
 * which the bank API checks against Passbook's JWKS. Anything but a well-formed answer in time is
 * AccountsUnavailable: the consent screen then grants nothing.
 */

export interface PayableAccount {
  iban: string;
  name: string;
  balance: { currency: string; amount: string };
}

export type LookUpAccounts = (customerId: string) => Promise<PayableAccount[]>;

export class AccountsUnavailable extends Error {
  override name = 'AccountsUnavailable';
}

export interface AccountLookupOptions {
  issuer: string;
  bankApiUrl: string;
  /** Passbook's signing keys as the provider uses them now (src/oidc/key-refresh.ts). */
  signingKeys: () => readonly JWK[];
  timeoutMs?: number;
}

const LIFETIME_SECONDS = 60;
const DEFAULT_TIMEOUT_MS = 3000;

/** The ES256 key that signs now: the first that may sign (active keys come first). */
function activeEs256Key(keys: readonly JWK[]): JWK & { kid: string } {
  const key = keys.find(
    (candidate) =>
      candidate.alg === 'ES256' && !(candidate.key_ops ?? ['sign']).every((op) => op === 'verify'),
  );
  if (!key?.kid) throw new AccountsUnavailable('no active ES256 signing key');
  return key as JWK & { kid: string };
}

/**
 * Each signing key imported once: the key set is replaced, never changed, when keys rotate, so a
 * JWK object stands for one key for as long as it lives.
 */
const imported = new WeakMap<JWK, Promise<CryptoKey | KeyObject | Uint8Array>>();

function signingKeyOf(jwk: JWK): Promise<CryptoKey | KeyObject | Uint8Array> {
  let key = imported.get(jwk);
  if (!key) {
    key = importJWK(jwk, 'ES256');
    imported.set(jwk, key);
  }
  return key;
}

/** The signed request for one customer's accounts. */
export async function accountLookupToken(
  options: Pick<AccountLookupOptions, 'issuer' | 'bankApiUrl' | 'signingKeys'>,
  customerId: string,
): Promise<string> {
  const jwk = activeEs256Key(options.signingKeys());
  const key = await signingKeyOf(jwk);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', typ: 'account-lookup+jwt', kid: jwk.kid })
    .setIssuer(options.issuer)
    .setAudience(options.bankApiUrl)
    .setSubject(customerId)
    .setIssuedAt(now)
    .setExpirationTime(now + LIFETIME_SECONDS)
    .setJti(randomUUID())
    .sign(key);
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

function parseAccount(value: unknown): PayableAccount | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { iban, name, balance } = value as Record<string, unknown>;
  if (!isText(iban) || !isText(name) || typeof balance !== 'object' || balance === null) return undefined;
  const { currency, amount } = balance as Record<string, unknown>;
  if (!isText(currency) || !isText(amount)) return undefined;
  return { iban, name, balance: { currency, amount } };
}

function parseAnswer(body: unknown): PayableAccount[] {
  const accounts: unknown =
    typeof body === 'object' && body !== null ? (body as Record<string, unknown>).accounts : undefined;
  if (!Array.isArray(accounts)) throw new AccountsUnavailable('the bank API answered without accounts');
  return accounts.map((entry: unknown) => {
    const account = parseAccount(entry);
    if (!account) throw new AccountsUnavailable('the bank API answered an account of the wrong shape');
    return account;
  });
}

export function accountLookup(options: AccountLookupOptions): LookUpAccounts {
  return async (customerId) => {
    let response: Response;
    try {
      response = await fetch(`${options.bankApiUrl}/consent/accounts`, {
        headers: {
          accept: 'application/json',
          authorization: `Bearer ${await accountLookupToken(options, customerId)}`,
        },
        redirect: 'error',
        signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
    } catch (error) {
      if (error instanceof AccountsUnavailable) throw error;
      throw new AccountsUnavailable('the bank API could not be reached', { cause: error });
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new AccountsUnavailable(`the bank API answered ${response.status}`);
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch (error) {
      throw new AccountsUnavailable('the bank API answered something that is not JSON', { cause: error });
    }
    return parseAnswer(body);
  };
}
