import { Counter, Gauge, type Registry } from 'prom-client';
import type { ModelChangeFeed } from '../oidc/storage/change-feed.ts';
import type { LiveTokenCache, LookupResult } from '../oidc/storage/live-tokens.ts';

/**
 * The live-token cache as an operator watches it: how lookups were answered, how many copies are
 * kept, and whether the change feed is live (0 means every lookup goes to the database).
 * Everything is read from the cache when scraped.
 */
export function countTokenCache(cache: LiveTokenCache, feed: ModelChangeFeed, registry: Registry): void {
  new Counter({
    name: 'passbook_token_cache_lookups_total',
    help: 'Access-token lookups, by result: hit (answered from memory), miss (read from the database), bypass (change feed not live).',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const result of ['hit', 'miss', 'bypass'] satisfies LookupResult[]) {
        this.inc({ result }, cache.lookups[result]);
      }
    },
  });
  new Gauge({
    name: 'passbook_token_cache_entries',
    help: 'Access tokens this process keeps a copy of.',
    registers: [registry],
    collect() {
      this.set(cache.size);
    },
  });
  new Gauge({
    name: 'passbook_token_cache_feed_live',
    help: '1 while changes from every node reach this process (LISTEN connection up, heartbeat on time); 0 while the cache is bypassed.',
    registers: [registry],
    collect() {
      this.set(feed.isLive() ? 1 : 0);
    },
  });
}
