import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { startEmbeddedPostgres } from './embedded.ts';
import { createKnex, type Knex } from './knex.ts';

export interface Database {
  knex: Knex;
  /** Where it is, for a connection of its own (the change feed, src/oidc/storage/change-feed.ts). */
  url: string;
  /** True when Passbook runs on its own embedded PostgreSQL. */
  embedded: boolean;
  close(): Promise<void>;
}

/** The database named by DATABASE_URL, or else the embedded one under DATA_DIR. */
export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  if (config.databaseUrl) {
    const knex = createKnex(config.databaseUrl, undefined, log, config.databaseTimeouts);
    return { knex, url: config.databaseUrl, embedded: false, close: () => knex.destroy() };
  }
  const embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPostgresPort, log);
  const knex = createKnex(embedded.url, undefined, log, config.databaseTimeouts);
  return {
    knex,
    url: embedded.url,
    embedded: true,
    async close() {
      await knex.destroy();
      await embedded.stop();
    },
  };
}
