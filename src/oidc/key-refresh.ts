import type Provider from 'oidc-provider';
import type { JWK } from 'jose';
import type { Knex } from '../db/knex.ts';
import type { DataCipher } from '../crypto/data-cipher.ts';
import type { Logger } from '../log.ts';
import { replaceSigningKeys } from './engine-internals.ts';
import { loadSigningKeys } from './keys.ts';

/**
 * Keeps a running provider's signing keys in step with `signing_keys`, without a restart: every
 * KEY_REFRESH_INTERVAL seconds, and whenever asked (after a key command in this process). The
 * table is the truth; a round that fails keeps the keys the provider has and tries again next time.
 */

export interface SigningKeyRefresher {
  /** Re-reads the keys now and swaps them in if they changed. */
  refresh(): Promise<void>;
  /** The keys the provider signs with now, in its order (the active key of each algorithm first). */
  current(): readonly JWK[];
  /** Refreshes every `intervalSeconds`; returns what stops it (after any round under way). */
  startTimer(intervalSeconds: number): () => Promise<void>;
}

// kid, key_ops and order are all that a change of state alters.
const shape = (keys: readonly JWK[]) => JSON.stringify(keys.map((key) => [key.kid, key.key_ops ?? null]));

export function signingKeyRefresher(
  provider: Provider,
  knex: Knex,
  cipher: DataCipher,
  initial: readonly JWK[],
  log: Logger,
): SigningKeyRefresher {
  let current = shape(initial);
  let keysNow = initial;
  let queue: Promise<unknown> = Promise.resolve();

  async function load(): Promise<void> {
    const keys = await loadSigningKeys(knex, cipher);
    const next = shape(keys);
    if (next === current) return;
    replaceSigningKeys(provider, keys);
    current = next;
    keysNow = keys;
    log.info({ kids: keys.map((key) => key.kid) }, 'signing keys changed');
  }

  // Rounds never overlap, and one asked for during another runs after it, so a change made just
  // before the call is always seen.
  function refresh(): Promise<void> {
    const mine = queue.then(load);
    queue = mine.catch(() => undefined);
    return mine;
  }

  return {
    refresh,
    current: () => keysNow,
    startTimer(intervalSeconds) {
      const timer = setInterval(() => {
        refresh().catch((error: unknown) =>
          log.warn({ err: error }, 'reading signing keys failed; will retry'),
        );
      }, intervalSeconds * 1000);
      timer.unref();
      return async () => {
        clearInterval(timer);
        await queue;
      };
    },
  };
}
