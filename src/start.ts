import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type Provider from 'oidc-provider';
import type { Config } from './config.ts';
import type { DataCipher } from './crypto/data-cipher.ts';
import { migrate } from './db/migrate.ts';
import { openDatabase, type Database } from './db/open.ts';
import type { Logger } from './log.ts';
import { startPurgeTimer } from './oidc/storage/purge.ts';
import { startModelChangeFeed, type ModelChangeFeed } from './oidc/storage/change-feed.ts';
import { LiveTokenCache } from './oidc/storage/live-tokens.ts';
import { CustomerCopies } from './customers/customer-copies.ts';
import { throttlePurgeTask } from './sign-in/throttle.ts';
import { auditRetentionPurgeTask } from './audit/events.ts';
import { DEMO_CLIENT_ID, DEMO_CUSTOMER, DEMO_REDIRECT_URI, seedDemo, type DemoSeed } from './seed/demo.ts';
import { createApp } from './server.ts';
import { compiledPagesAreStale } from './http/views.ts';
import { closeServer, finishesBy, requestListener } from './service/kit.ts';
import { passbookMetrics } from './metrics/passbook.ts';
import { serveMetrics, type MetricsServer } from './metrics/server.ts';

export interface RunningPassbook {
  url: string;
  provider: Provider;
  database: Database;
  /** Encrypts data at rest with DATA_ENCRYPTION_KEY (or the development key). */
  cipher: DataCipher;
  /** Re-reads the signing keys now (each process also does every KEY_REFRESH_INTERVAL). */
  refreshSigningKeys(): Promise<void>;
  /** The live-token cache, the customer copies and their change feed, unless TOKEN_CACHE_MAX_AGE is 0. */
  tokenCache: TokenCache | undefined;
  /** Where GET /metrics is served (docs/metrics.md), unless METRICS_PORT is off. */
  metricsUrl: string | undefined;
  /**
   * Answers /readyz with 503, stops taking connections, lets the requests in flight finish (up to
   * SHUTDOWN_TIMEOUT), stops the purge, waits for activity-log writes, then closes the database.
   */
  close(): Promise<void>;
}

function announceDemo(config: Config, log: Logger, seed: DemoSeed): void {
  log.info(
    {
      signIn: `${config.issuer} as "${DEMO_CUSTOMER.username}" with password "${DEMO_CUSTOMER.password}"`,
      demoApp: {
        client_id: DEMO_CLIENT_ID,
        redirect_uri: DEMO_REDIRECT_URI,
        credentials: seed.credentialsFile,
      },
    },
    'demo customer and app are ready',
  );
  // The secret is the demo's, kept in DATA_DIR so that an authenticator app set up once keeps working.
  process.stdout.write(
    `\nDemo customer "${seed.twoStep.username}" (password "${seed.twoStep.password}") has two-step verification on.\n` +
      `Add this key to an authenticator app: ${seed.twoStep.secret}\n  (${seed.twoStep.otpauthUri})\n\n`,
  );
  if (seed.clientSecret) {
    // Shown once, like every client secret: the demo app's own configuration needs it.
    process.stdout.write(
      `\nDemo app "${DEMO_CLIENT_ID}" client_secret (shown once, also kept in ${seed.credentialsFile}): ${seed.clientSecret}\n\n`,
    );
  }
}

/** Copies kept at most: a few kilobytes each, so some tens of megabytes at worst. */
const TOKEN_CACHE_ENTRIES = 20_000;

interface TokenCache {
  cache: LiveTokenCache;
  customers: CustomerCopies;
  feed: ModelChangeFeed;
}

/**
 * The live-token cache and the customer copies, with the change feed they trust, unless
 * TOKEN_CACHE_MAX_AGE is 0; both keep a copy for that long at most.
 */
function startTokenCache(config: Config, database: Database, log: Logger): TokenCache | undefined {
  if (config.tokenCacheMaxAgeSeconds === 0) return undefined;
  const feed = startModelChangeFeed(database.url, { log });
  const limits = { maxAgeMs: config.tokenCacheMaxAgeSeconds * 1000, maxEntries: TOKEN_CACHE_ENTRIES };
  return { cache: new LiveTokenCache(feed, limits), customers: new CustomerCopies(feed, limits), feed };
}

/** Database, migrations, optional demo seed, HTTP server, purge timer: a running Passbook. */
export async function startPassbook(config: Config, log: Logger): Promise<RunningPassbook> {
  if (config.env === 'development' && compiledPagesAreStale()) {
    log.warn('views/ has changed since its pages were compiled: run `npm run views` to serve the change');
  }
  const database = await openDatabase(config, log);
  let metricsServer: MetricsServer | undefined;
  let tokenCache: ReturnType<typeof startTokenCache> = undefined;
  try {
    const applied = await migrate(database.knex);
    if (applied.length) log.info({ applied }, 'migrations applied');
    const metrics = passbookMetrics(database.knex);
    tokenCache = startTokenCache(config, database, log);
    if (tokenCache) metrics.observeTokenCache(tokenCache.cache, tokenCache.feed);
    const { app, provider, audit, cipher, keys, health } = await createApp(
      config,
      database.knex,
      log,
      metrics,
      tokenCache?.cache,
      tokenCache?.customers,
    );
    if (config.seedDemo) {
      const seed = await seedDemo(
        database.knex,
        (metadata) => provider.Client.validate(metadata),
        cipher,
        config.dataDir,
      );
      announceDemo(config, log, seed);
    }
    if (config.metrics) metricsServer = await serveMetrics(metrics.registry, config.metrics);
    const server = http.createServer(requestListener(app));
    server.listen(config.port);
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const stopPurge = startPurgeTimer(database.knex, config.purgeIntervalSeconds, log, [
      throttlePurgeTask(config.throttle),
      auditRetentionPurgeTask(config.auditRetentionDays),
    ]);
    const stopKeyRefresh = keys.startTimer(config.keyRefreshIntervalSeconds);
    log.info({ issuer: config.issuer, port, metrics: metricsServer?.url }, 'Passbook is listening');
    return {
      url: `http://127.0.0.1:${port}`,
      provider,
      database,
      cipher,
      refreshSigningKeys: () => keys.refresh(),
      tokenCache,
      metricsUrl: metricsServer?.url,
      async close() {
        const deadline = Date.now() + config.shutdownTimeoutSeconds * 1000;
        health.startDraining();
        const { forced } = await closeServer(server, deadline - Date.now());
        if (forced) log.warn('shutdown timeout: requests still in flight were cut off');
        const closing = (async () => {
          await stopPurge();
          await stopKeyRefresh();
          await audit.drain();
          await tokenCache?.feed.close();
          await metricsServer?.close();
          await database.close();
        })();
        if (!(await finishesBy(closing, deadline))) {
          log.warn('shutdown timeout: database work still under way was abandoned');
        }
      },
    };
  } catch (error) {
    await tokenCache?.feed.close();
    await metricsServer?.close();
    await database.close();
    throw error;
  }
}
