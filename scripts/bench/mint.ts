import { createHash, randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import { accountInformation, readsAccounts } from '../../src/oidc/account-information.ts';

/**
 * Tokens made the way the provider's own endpoints make them (its models, its adapter), so that
 * the workloads start with enough of them without a sign-in per token. Used on a Passbook twin
 * (PostgreSQL) and inside the in-memory ceiling alike, so both serve identical artefacts.
 */

export interface MintTarget {
  accountId: string;
  clientId: string;
  scope: string;
  /** The accounts the customer shares with the app; a made-up one when the bank's ledger is not read. */
  ibans?: string[];
}

/** The one PKCE verifier behind every minted code: the server still hashes it per request. */
export const CODE_VERIFIER = randomBytes(32).toString('base64url');
const CODE_CHALLENGE = createHash('sha256').update(CODE_VERIFIER).digest('base64url');
export const REDIRECT_URI = 'https://app.example/callback';
/** The account a bench customer shares, as the consent screen would record it (never read by the bank). */
const SHARED_IBAN = 'NL91ABNA0417164300';

/** The account choice a grant and its tokens carry when the scope reads accounts, as Passbook's consent writes it. */
function accountChoice({ scope, ibans = [SHARED_IBAN] }: MintTarget) {
  return readsAccounts(scope.split(' ')) ? [accountInformation(ibans)] : undefined;
}

async function clientOf(provider: Provider, clientId: string) {
  const client = await provider.Client.find(clientId);
  if (!client) throw new Error(`bench client ${clientId} is not registered`);
  return client;
}

export async function mintGrant(provider: Provider, target: MintTarget): Promise<string> {
  const grant = new provider.Grant({ accountId: target.accountId, clientId: target.clientId });
  grant.addOIDCScope(target.scope);
  const choice = accountChoice(target);
  if (choice) grant.rar = choice;
  return grant.save();
}

function signedInAt(): number {
  return Math.floor(Date.now() / 1000) - 60;
}

/** A refresh token as the code exchange issues it: unrotated, under its own grant. */
export async function mintRefreshToken(provider: Provider, target: MintTarget): Promise<string> {
  const client = await clientOf(provider, target.clientId);
  const grantId = await mintGrant(provider, target);
  const token = new provider.RefreshToken({
    accountId: target.accountId,
    amr: ['pwd'],
    authTime: signedInAt(),
    client,
    grantId,
    gty: 'authorization_code',
    rotations: 0,
    scope: target.scope,
    rar: accountChoice(target),
  });
  return token.save();
}

/** A Bearer access token as the code exchange issues it (no audience, so UserInfo accepts it). */
export async function mintAccessToken(provider: Provider, target: MintTarget): Promise<string> {
  const client = await clientOf(provider, target.clientId);
  const grantId = await mintGrant(provider, target);
  const token = new provider.AccessToken({
    accountId: target.accountId,
    client,
    grantId,
    gty: 'authorization_code',
    rar: accountChoice(target),
  });
  token.scope = target.scope;
  return token.save();
}

/**
 * Authorization codes as /auth issues them after sign-in and consent, `perGrant` to a grant (one
 * customer's consent to the app, used for several sign-ins), with offline_access so that they do
 * not expire with a session.
 */
export async function mintCodes(
  provider: Provider,
  target: MintTarget,
  count: number,
  perGrant: number,
): Promise<string[]> {
  const client = await clientOf(provider, target.clientId);
  const codes: string[] = [];
  let grantId = '';
  for (let i = 0; i < count; i += 1) {
    if (i % perGrant === 0) grantId = await mintGrant(provider, target);
    const code = new provider.AuthorizationCode({
      accountId: target.accountId,
      amr: ['pwd'],
      authTime: signedInAt(),
      client,
      codeChallenge: CODE_CHALLENGE,
      codeChallengeMethod: 'S256',
      grantId,
      // Required by the typings; not part of a stored code, as with /auth's own.
      gty: 'authorization_code',
      nonce: randomBytes(12).toString('base64url'),
      redirectUri: REDIRECT_URI,
      scope: target.scope,
      rar: accountChoice(target),
      sessionUid: randomBytes(16).toString('base64url'),
    });
    codes.push(await code.save());
  }
  return codes;
}

/** Runs `count` mints, `parallel` at a time, and returns their results in order. */
export async function inParallel<T>(
  count: number,
  parallel: number,
  mint: (i: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next;
      next += 1;
      results[i] = await mint(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return results;
}
