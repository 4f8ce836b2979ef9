import knexFactory, { type Knex } from 'knex';

export type { Knex };

/** A statement that runs longer than this is a bug or an outage; fail it rather than hang. */
const STATEMENT_TIMEOUT_MS = 15_000;

export function createKnex(databaseUrl: string, poolMax = 10): Knex {
  return knexFactory({
    client: 'pg',
    connection: { connectionString: databaseUrl, statement_timeout: STATEMENT_TIMEOUT_MS },
    pool: { min: 0, max: poolMax },
  });
}
