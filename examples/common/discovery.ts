import * as oidc from 'openid-client';

/**
 * How an example app finds the bank: OpenID Connect discovery of its issuer, done once and
 * shared, and retried on the next request if it failed (the bank may simply not be up yet).
 */

function isLocalhost(url: URL): boolean {
  return ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

export function discoverOnce(
  issuerUrl: string,
  clientId: string,
  clientAuthentication: oidc.ClientAuth,
): () => Promise<oidc.Configuration> {
  const issuer = new URL(issuerUrl);
  let discovered: Promise<oidc.Configuration> | undefined;
  return () => {
    discovered ??= oidc
      .discovery(issuer, clientId, undefined, clientAuthentication, {
        // Plain http is for a bank on this machine (the demo) only.
        execute: isLocalhost(issuer) ? [oidc.allowInsecureRequests] : [],
        timeout: 5,
      })
      .catch((error: unknown) => {
        discovered = undefined;
        throw error;
      });
    return discovered;
  };
}
