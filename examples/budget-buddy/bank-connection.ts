import * as oidc from 'openid-client';
import { discoverOnce } from '../common/discovery.ts';
import type { BudgetBuddyConfig } from './config.ts';
import type { BankConnection, PendingAuthorization } from './sessions.ts';

/**
 * Everything Budget Buddy does with the bank's authorization server, through openid-client:
 * discovery, the authorization request (code flow, PKCE, state, nonce), the callback, refresh,
 * UserInfo and revocation. Read this file to learn the integration.
 */

/** What Budget Buddy asks the customer for. `offline_access` brings a refresh token. */
export const SCOPE = 'openid profile offline_access accounts:read transactions:read';

/** The bank will not hear of this grant any more: the customer has to connect again. */
export class ConnectionEndedError extends Error {
  override name = 'ConnectionEndedError';
}

/** The customer said no (or cancelled) on the bank's pages. */
export class NotAllowedError extends Error {
  override name = 'NotAllowedError';
}

export interface BankAuthorization {
  start(): Promise<{ url: URL; pending: PendingAuthorization }>;
  finish(callbackUrl: URL, pending: PendingAuthorization): Promise<BankConnection>;
  refresh(connection: BankConnection): Promise<BankConnection>;
  disconnect(connection: BankConnection): Promise<void>;
}

function connectionFrom(
  tokens: oidc.TokenEndpointResponse,
  previous: Pick<BankConnection, 'refreshToken' | 'name'>,
): BankConnection {
  return {
    accessToken: tokens.access_token,
    // The bank rotates refresh tokens: always keep the newest one.
    refreshToken: tokens.refresh_token ?? previous.refreshToken,
    expiresAt: Date.now() + (tokens.expires_in ?? 0) * 1000,
    name: previous.name,
  };
}

export function bankAuthorization(config: BudgetBuddyConfig): BankAuthorization {
  const redirectUri = `${config.baseUrl}/callback`;
  const configuration = discoverOnce(
    config.issuer,
    config.clientId,
    oidc.ClientSecretBasic(config.clientSecret),
  );

  return {
    async start() {
      const pending: PendingAuthorization = {
        state: oidc.randomState(),
        nonce: oidc.randomNonce(),
        codeVerifier: oidc.randomPKCECodeVerifier(),
      };
      const url = oidc.buildAuthorizationUrl(await configuration(), {
        redirect_uri: redirectUri,
        scope: SCOPE,
        state: pending.state,
        nonce: pending.nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(pending.codeVerifier),
        code_challenge_method: 'S256',
        // OpenID Connect issues a refresh token (offline_access) only with explicit consent.
        prompt: 'consent',
      });
      return { url, pending };
    },

    async finish(callbackUrl, pending) {
      const settings = await configuration();
      let tokens;
      try {
        // Checks state, iss, the code exchange with the PKCE verifier, and the ID token's nonce.
        tokens = await oidc.authorizationCodeGrant(settings, callbackUrl, {
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          pkceCodeVerifier: pending.codeVerifier,
          idTokenExpected: true,
        });
      } catch (error) {
        if (error instanceof oidc.AuthorizationResponseError && error.error === 'access_denied') {
          throw new NotAllowedError('the customer did not allow access');
        }
        throw error;
      }
      const sub = tokens.claims()?.sub;
      if (!sub) throw new Error('the bank sent no ID token subject');
      const profile = await oidc.fetchUserInfo(settings, tokens.access_token, sub);
      return connectionFrom(tokens, { refreshToken: undefined, name: profile.name });
    },

    async refresh(connection) {
      if (!connection.refreshToken) throw new ConnectionEndedError('no refresh token');
      try {
        const tokens = await oidc.refreshTokenGrant(await configuration(), connection.refreshToken);
        return connectionFrom(tokens, connection);
      } catch (error) {
        // invalid_grant: the customer revoked access, or the grant expired. Nothing to retry.
        if (error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant') {
          throw new ConnectionEndedError('the bank ended the grant');
        }
        throw error;
      }
    },

    async disconnect(connection) {
      // Revoking the refresh token ends the whole grant at the bank, access tokens included.
      const token = connection.refreshToken ?? connection.accessToken;
      const hint = connection.refreshToken ? 'refresh_token' : 'access_token';
      await oidc.tokenRevocation(await configuration(), token, { token_type_hint: hint });
    },
  };
}
