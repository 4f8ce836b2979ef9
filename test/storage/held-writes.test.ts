import { randomBytes } from 'node:crypto';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import { makeHeldWrites, type HeldWrite, type ModelRowWrite } from '../../src/oidc/storage/held-writes.ts';
import { writeTargetOf } from '../../src/db/request-transaction.ts';
import { testDatabaseUrl } from '../support/passbook.ts';

/**
 * A request's held-back writes (src/oidc/storage/held-writes.ts) against real SQL: one
 * statement when they touch distinct rows, in order when one row is touched twice, and in either
 * case nothing at all when a consume finds its row already consumed.
 */

const RUN = `hw${randomBytes(5).toString('hex')}`;
const KIND = `Held${RUN}`;
let knex: Knex;

class LostConsume extends Error {}
const lost = (kind: string) => new LostConsume(kind);

beforeAll(() => {
  knex = createKnex(testDatabaseUrl(), 2);
});

afterAll(async () => {
  await knex('oidc_models').where({ kind: KIND }).delete();
  await knex.destroy();
});

function row(id: string, payload: Record<string, unknown> = {}): ModelRowWrite {
  return {
    kind: KIND,
    id,
    payload: { jti: id, ...payload },
    grant_id: null,
    uid: null,
    user_code: null,
    customer_id: null,
    client_id: null,
    expires_at: null,
  };
}

const upsert = (id: string, payload?: Record<string, unknown>): HeldWrite => ({
  type: 'upsert',
  row: row(id, payload),
});
const consume = (id: string): HeldWrite => ({ type: 'consume', kind: KIND, id, at: new Date() });
const destroy = (id: string): HeldWrite => ({ type: 'destroy', kind: KIND, id });

async function stored(
  id: string,
): Promise<{ payload: { jti: string; n?: number }; consumed: boolean } | undefined> {
  const found: { payload: { jti: string; n?: number }; consumed_at: Date | null } | undefined = await knex(
    'oidc_models',
  )
    .where({ kind: KIND, id })
    .first('payload', 'consumed_at');
  return found && { payload: found.payload, consumed: found.consumed_at !== null };
}

async function statementsOf(work: () => Promise<unknown>): Promise<number> {
  let count = 0;
  const counted = () => (count += 1);
  knex.on('query', counted);
  try {
    await work();
  } finally {
    knex.removeListener('query', counted);
  }
  return count;
}

test('a consume and the writes that depend on it are one statement, and all land', async () => {
  await makeHeldWrites(writeTargetOf(knex), [upsert(`${RUN}-old`)], lost);
  const statements = await statementsOf(() =>
    makeHeldWrites(
      writeTargetOf(knex),
      [consume(`${RUN}-old`), upsert(`${RUN}-new-a`), upsert(`${RUN}-new-b`)],
      lost,
    ),
  );
  expect(statements).toBe(1);
  expect(await stored(`${RUN}-old`)).toMatchObject({ consumed: true });
  expect(await stored(`${RUN}-new-a`)).toMatchObject({ consumed: false });
  expect(await stored(`${RUN}-new-b`)).toMatchObject({ consumed: false });
});

test('a consume that finds its row consumed throws, and nothing of the batch is written', async () => {
  await makeHeldWrites(writeTargetOf(knex), [upsert(`${RUN}-spent`)], lost);
  await makeHeldWrites(writeTargetOf(knex), [consume(`${RUN}-spent`)], lost);
  await expect(
    makeHeldWrites(writeTargetOf(knex), [consume(`${RUN}-spent`), upsert(`${RUN}-never`)], lost),
  ).rejects.toBeInstanceOf(LostConsume);
  expect(await stored(`${RUN}-never`)).toBeUndefined();
});

test('of two batches consuming one row at once, exactly one lands (10 races)', async () => {
  for (let race = 0; race < 10; race += 1) {
    const old = `${RUN}-race-${race}`;
    await makeHeldWrites(writeTargetOf(knex), [upsert(old)], lost);
    const results = await Promise.allSettled(
      ['x', 'y'].map((side) =>
        makeHeldWrites(writeTargetOf(knex), [consume(old), upsert(`${old}-${side}`)], lost),
      ),
    );
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    const landed = [await stored(`${old}-x`), await stored(`${old}-y`)].filter(Boolean);
    expect(landed).toHaveLength(1);
  }
});

test('a later upsert of a row replaces an earlier one in the same batch', async () => {
  await makeHeldWrites(
    writeTargetOf(knex),
    [upsert(`${RUN}-twice`, { n: 1 }), upsert(`${RUN}-twice`, { n: 2 })],
    lost,
  );
  expect((await stored(`${RUN}-twice`))?.payload.n).toBe(2);
});

test('one row written and consumed in one batch is made in order, all or nothing', async () => {
  await makeHeldWrites(writeTargetOf(knex), [upsert(`${RUN}-ordered`), consume(`${RUN}-ordered`)], lost);
  expect(await stored(`${RUN}-ordered`)).toMatchObject({ consumed: true });

  // Consumed already: the upsert before the failing consume is rolled back with it.
  await expect(
    makeHeldWrites(
      writeTargetOf(knex),
      [upsert(`${RUN}-ordered`, { n: 3 }), consume(`${RUN}-ordered`)],
      lost,
    ),
  ).rejects.toBeInstanceOf(LostConsume);
  expect((await stored(`${RUN}-ordered`))?.payload.n).toBeUndefined();
});

test('deletes share the statement with the upserts, and a row deleted then stored again ends stored', async () => {
  await makeHeldWrites(writeTargetOf(knex), [upsert(`${RUN}-ended`), upsert(`${RUN}-renewed`)], lost);
  const statements = await statementsOf(() =>
    makeHeldWrites(writeTargetOf(knex), [destroy(`${RUN}-ended`), upsert(`${RUN}-started`)], lost),
  );
  expect(statements).toBe(1);
  expect(await stored(`${RUN}-ended`)).toBeUndefined();
  expect(await stored(`${RUN}-started`)).toMatchObject({ consumed: false });

  // One row touched twice goes one write at a time, in the order made.
  await makeHeldWrites(
    writeTargetOf(knex),
    [destroy(`${RUN}-renewed`), upsert(`${RUN}-renewed`, { n: 4 })],
    lost,
  );
  expect((await stored(`${RUN}-renewed`))?.payload.n).toBe(4);
  await makeHeldWrites(
    writeTargetOf(knex),
    [upsert(`${RUN}-renewed`, { n: 5 }), destroy(`${RUN}-renewed`)],
    lost,
  );
  expect(await stored(`${RUN}-renewed`)).toBeUndefined();
});
