import type { Knex } from '../../db/knex.ts';

/**
 * Owner of `oidc_models`: oidc-provider's storage for every model it keeps (sessions,
 * interactions, codes, tokens, grants, PAR requests, replay records), one row per artefact.
 * This folder is the only code that reads or writes the table: the adapter the provider calls
 * (adapter.ts), the customer's grants and sessions for the account pages (grants-and-sessions.ts)
 * and the expiry purge (purge.ts). Lookups go through real indexed columns, never JSON expressions.
 */

export const TABLE = 'oidc_models';

/** Rows of one kind that have not expired: what every lookup sees. */
export function liveRows(knex: Knex, kind: string, now = new Date()): Knex.QueryBuilder {
  return knex(TABLE)
    .where({ kind })
    .andWhere((where) => {
      // A knex builder is thenable; this one is a group of conditions, never run on its own.
      void where.whereNull('expires_at').orWhere('expires_at', '>', now);
    });
}

const BATCH_SIZE = 1000;

/** Deletes the matching rows in batches, so that no one statement holds a long lock; returns how many. */
export async function deleteInBatches(
  knex: Knex,
  filter: (query: Knex.QueryBuilder) => Knex.QueryBuilder,
): Promise<number> {
  let total = 0;
  for (;;) {
    const batch = filter(knex(TABLE).select('kind', 'id')).limit(BATCH_SIZE);
    const deleted = await knex(TABLE).whereIn(['kind', 'id'], batch).delete();
    total += deleted;
    if (deleted < BATCH_SIZE) return total;
  }
}
