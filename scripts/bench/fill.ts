import type { Knex } from '../../src/db/knex.ts';

/**
 * Stored data for the growth runs: rows shaped like the adapter's (src/oidc/storage/ owns the
 * table; this is a benchmark fixture, as the index test's is). Half are expired and not yet
 * purged, some refresh tokens consumed; every row belongs to a grant, customer and app of its
 * own kind, as a busy bank's would. Inserted by one INSERT … SELECT generate_series.
 */

const KINDS = [
  'AccessToken',
  'AccessToken',
  'RefreshToken',
  'RefreshToken',
  'AuthorizationCode',
  'Grant',
  'Session',
  'Interaction',
];

export async function emptyModels(knex: Knex): Promise<void> {
  await knex.raw('TRUNCATE oidc_models');
}

export async function countModels(knex: Knex): Promise<number> {
  const [row] = await knex('oidc_models').count<{ count: string }[]>({ count: '*' });
  return Number(row?.count ?? 0);
}

/** Adds rows numbered from..to (inclusive), then refreshes the planner's statistics. */
export async function fillModels(knex: Knex, from: number, to: number): Promise<void> {
  // A million rows take longer than the pool's statement timeout, which is for requests.
  await knex.transaction(async (trx) => {
    await trx.raw('SET LOCAL statement_timeout = 0');
    await trx.raw(
      `INSERT INTO oidc_models (kind, id, payload, grant_id, uid, customer_id, client_id, expires_at, consumed_at, created_at)
     SELECT (?::text[])[1 + i % ?],
            'fill-' || md5(i::text),
            jsonb_build_object('jti', 'fill-' || md5(i::text), 'kind', (?::text[])[1 + i % ?],
                               'accountId', 'fill-a' || (i / 20), 'clientId', 'fill-c' || (i % 50),
                               'grantId', 'fill-g' || (i / 5), 'scope', 'openid profile offline_access transactions:read',
                               'iat', extract(epoch from now())::int, 'gty', 'authorization_code'),
            'fill-g' || (i / 5),
            CASE WHEN i % ? IN (6, 7) THEN 'fill-u' || i END,
            'fill-a' || (i / 20),
            'fill-c' || (i % 50),
            CASE WHEN i % 2 = 0 THEN now() - (i % 3600) * interval '1 second'
                 ELSE now() + (i % 86400) * interval '1 second' END,
            CASE WHEN i % ? = 3 AND i % 3 = 0 THEN now() - interval '1 minute' END,
            now() - (i % 86400) * interval '1 second'
     FROM generate_series(?::int, ?::int) AS i`,
      [KINDS, KINDS.length, KINDS, KINDS.length, KINDS.length, KINDS.length, from, to],
    );
  });
  // VACUUM as well as ANALYZE, so that autovacuum does not wake up to do it during a timed run.
  await knex.raw('VACUUM ANALYZE oidc_models');
}
