import type { Knex } from '../db/knex.ts';
import { LOCKS } from '../db/locks.ts';
import { dataCipher, generateDataKey, type DataCipher } from './data-cipher.ts';

/**
 * Owner of `data_encryption_keys`: the data key generated for development and tests when
 * DATA_ENCRYPTION_KEY is unset (production refuses to start without it, see src/config.ts).
 * Created on the first start under the key-creation lock, like the cookie keys, so that two
 * processes starting together share one key.
 */

const TABLE = 'data_encryption_keys';

/** DATA_ENCRYPTION_KEY's keys when configured; otherwise a key generated once and stored. */
async function loadDataKeys(knex: Knex, configured: Buffer[] | undefined): Promise<Buffer[]> {
  if (configured) return configured;
  return knex.transaction(async (trx) => {
    await trx.raw('SELECT pg_advisory_xact_lock(?)', [LOCKS.keyCreation]);
    const rows = await trx(TABLE).select<{ secret: string }[]>('secret').orderBy('id', 'desc');
    if (rows.length > 0) return rows.map((row) => Buffer.from(row.secret, 'base64url'));
    const key = generateDataKey();
    await trx(TABLE).insert({ secret: key.toString('base64url') });
    return [key];
  });
}

export async function loadDataCipher(knex: Knex, configured: Buffer[] | undefined): Promise<DataCipher> {
  return dataCipher(await loadDataKeys(knex, configured));
}
