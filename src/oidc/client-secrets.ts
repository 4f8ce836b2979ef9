import { timingSafeEqual } from 'node:crypto';
import type Provider from 'oidc-provider';
import { secretDigest } from '../clients/clients.ts';

/**
 * Clients' secrets are stored only as digests, so the provider sees the digest as the client's
 * `client_secret`. Its comparison is taught to digest what the app presents first, then compare
 * in constant time. (This is also why secret-keyed algorithms such as HS256 and
 * client_secret_jwt are not enabled: they need the secret itself.)
 */
export function compareSecretsAsDigests(provider: Provider): void {
  provider.Client.prototype.compareClientSecret = function compareClientSecret(presented: string) {
    const stored = Buffer.from(String(this.clientSecret ?? ''));
    const offered = Buffer.from(secretDigest(presented));
    return stored.length === offered.length && timingSafeEqual(stored, offered);
  };
}
