import type Provider from 'oidc-provider';
import { loadConfig } from '../../src/config.ts';
import type { Knex } from '../../src/db/knex.ts';
import { loadCookieKeys, loadSigningKeys } from '../../src/oidc/keys.ts';
import { loadDataCipher } from '../../src/crypto/data-keys.ts';
import { createProvider, dpopNonceSecret, type ProviderDependencies } from '../../src/oidc/provider.ts';

/**
 * A provider built by Passbook's own createProvider from the same environment as the server under
 * test, with the same keys. With PostgreSQL storage it is the server's twin, writing the rows the
 * server will read; with the in-memory adapter it is the ceiling.
 */
export async function benchProvider(
  env: Record<string, string>,
  knex: Knex,
  storage: NonNullable<ProviderDependencies['storage']>,
): Promise<Provider> {
  const config = loadConfig(env);
  const [cookieKeys, cipher] = await Promise.all([
    loadCookieKeys(knex, config.cookieKeys),
    loadDataCipher(knex, config.dataEncryptionKeys),
  ]);
  const signingKeys = await loadSigningKeys(knex, cipher);
  // The benchmark's customers sign in with a password alone.
  return createProvider({
    config,
    knex,
    signingKeys,
    cookieKeys,
    storage,
    hasSecondFactor: () => Promise.resolve(false),
    dpopNonceSecret: dpopNonceSecret(config, cipher),
  });
}
