import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import { PostgresAdapter } from '../../src/oidc/storage/adapter.ts';
import {
  grantsOfCustomer,
  latestGrantId,
  sessionsOfCustomer,
} from '../../src/oidc/storage/grants-and-sessions.ts';
import { purgeExpired } from '../../src/oidc/storage/purge.ts';
import { testDatabaseUrl } from '../support/passbook.ts';

/**
 * The adapter's lookups must stay index scans as oidc_models grows. The SQL explained here is
 * captured from the adapter itself (knex's 'query' event), so it is exactly what it issues.
 */

const RUN = `t${randomBytes(5).toString('hex')}`;
const KIND = `Idx${RUN}`;
const ROWS = 20_000;

interface IssuedQuery {
  sql: string;
  bindings: unknown[];
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

let knex: Knex;
let explainer: pg.Client;

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}

/** The queries `work` sends through knex, in order. */
async function issuedBy(work: () => Promise<unknown>): Promise<IssuedQuery[]> {
  const issued: IssuedQuery[] = [];
  const listener = (query: { sql: string; bindings?: unknown[] }) => {
    issued.push({ sql: query.sql, bindings: query.bindings ?? [] });
  };
  knex.on('query', listener);
  try {
    await work();
  } finally {
    knex.removeListener('query', listener);
  }
  return issued;
}

async function planOf(query: IssuedQuery): Promise<PlanNode[]> {
  const { rows } = await explainer.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
    `EXPLAIN (FORMAT JSON) ${query.sql}`,
    query.bindings,
  );
  const plan = rows[0]?.['QUERY PLAN'][0]?.Plan;
  if (!plan) throw new Error(`no plan for ${query.sql}`);
  return flatten(plan);
}

function describePlan(nodes: PlanNode[]): string[] {
  return nodes.map((node) =>
    [node['Node Type'], node['Relation Name'], node['Index Name']].filter(Boolean).join(' '),
  );
}

function seqScansOfModels(nodes: PlanNode[]): PlanNode[] {
  return nodes.filter((node) => node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'oidc_models');
}

function indexesUsed(nodes: PlanNode[]): string[] {
  return nodes.flatMap((node) => (node['Index Name'] ? [node['Index Name']] : []));
}

beforeAll(async () => {
  knex = createKnex(testDatabaseUrl());
  explainer = new pg.Client({ connectionString: testDatabaseUrl() });
  await explainer.connect();
  // Live rows, as a busy server has them: refresh tokens, grants and sessions of many customers
  // (two of each per customer), distinct grants and uids, expiring over the next days.
  await knex.raw(
    `INSERT INTO oidc_models (kind, id, payload, grant_id, uid, user_code, customer_id, expires_at)
     SELECT (ARRAY[?, 'RefreshToken', 'Grant', 'Session'])[1 + i % 4], ? || '-' || i,
            jsonb_build_object('grantId', ? || '-g' || (i / 4)),
            ? || '-g' || (i / 4), ? || '-u' || i, NULL, ? || '-a' || (i / 8),
            CASE WHEN i % 10 = 0 THEN NULL ELSE now() + (i % 5000) * interval '1 minute' END
     FROM generate_series(1, ?) AS i`,
    [KIND, RUN, RUN, RUN, RUN, RUN, ROWS],
  );
  await knex.raw('ANALYZE oidc_models');
});

afterAll(async () => {
  await knex('oidc_models').where({ kind: KIND }).delete();
  await knex('oidc_models').where('id', 'like', `${RUN}-%`).delete();
  await explainer.end();
  await knex.destroy();
});

test('the table really is filled with this file’s rows', async () => {
  const [row] = await knex('oidc_models')
    .andWhere('id', 'like', `${RUN}-%`)
    .count<{ count: string }[]>({ count: '*' });
  expect(Number(row?.count)).toBe(ROWS);
});

test('find (by kind and id) uses the primary key', async () => {
  const [query] = await issuedBy(() => new PostgresAdapter(knex, KIND).find(`${RUN}-1234`));
  const plan = await planOf(query!);

  expect(describePlan(seqScansOfModels(plan))).toEqual([]);
  expect(indexesUsed(plan)).toContain('oidc_models_pkey');
});

test('findByUid uses the uid index', async () => {
  const [query] = await issuedBy(() => new PostgresAdapter(knex, KIND).findByUid(`${RUN}-u1234`));
  const plan = await planOf(query!);

  expect(describePlan(seqScansOfModels(plan))).toEqual([]);
  expect(indexesUsed(plan)).toContain('oidc_models_uid');
});

test('findByUserCode uses the user_code index', async () => {
  const [query] = await issuedBy(() => new PostgresAdapter(knex, KIND).findByUserCode(`${RUN}-nocode`));
  const plan = await planOf(query!);

  expect(describePlan(seqScansOfModels(plan))).toEqual([]);
  expect(indexesUsed(plan)).toContain('oidc_models_user_code');
});

test('revokeByGrantId (by grant_id) uses the grant_id index', async () => {
  const queries = await issuedBy(() => new PostgresAdapter(knex, KIND).revokeByGrantId(`${RUN}-gnone`));
  expect(queries.length).toBeGreaterThan(0);

  for (const query of queries) {
    const plan = await planOf(query);
    expect(describePlan(seqScansOfModels(plan))).toEqual([]);
    expect(indexesUsed(plan)).toContain('oidc_models_grant_id');
  }
});

test('refresh-token pruning (by grant_id) uses the grant_id index', async () => {
  const grantId = `${RUN}-grt`;
  const queries = await issuedBy(() =>
    new PostgresAdapter(knex, 'RefreshToken').upsert(`${RUN}-rt`, { grantId, rotations: 10 }, 3600),
  );
  // Pruned in the same statement as the token is written (src/oidc/storage/held-writes.ts).
  const pruning = queries.filter((query) => query.sql.includes('DELETE FROM oidc_models'));
  expect(pruning).toHaveLength(1);

  const plan = await planOf(pruning[0]!);
  expect(describePlan(seqScansOfModels(plan))).toEqual([]);
  expect(indexesUsed(plan)).toContain('oidc_models_grant_id');
});

test('purgeExpired (by expires_at) uses the expires_at index', async () => {
  const queries = await issuedBy(() => purgeExpired(knex));
  expect(queries.length).toBeGreaterThan(0);

  // The run's database is shared with every other test file, and when many of its rows have
  // expired a whole-table scan is the cheaper way to delete them: what must hold is that the
  // index can serve the purge, so the plan is asked for with scans priced out of reach.
  await explainer.query('SET enable_seqscan = off');
  try {
    for (const query of queries) {
      const plan = await planOf(query);
      expect(describePlan(seqScansOfModels(plan))).toEqual([]);
      expect(indexesUsed(plan)).toContain('oidc_models_expires_at');
    }
  } finally {
    await explainer.query('RESET enable_seqscan');
  }
});

test('the account pages’ lookups (by customer_id) use the customer_id index', async () => {
  const lookups = [
    () => latestGrantId(knex, `${RUN}-a100`, 'app'),
    () => grantsOfCustomer(knex, `${RUN}-a100`),
    () => sessionsOfCustomer(knex, `${RUN}-a100`),
  ];
  for (const lookup of lookups) {
    const [query] = await issuedBy(lookup);
    const plan = await planOf(query!);

    expect(describePlan(seqScansOfModels(plan))).toEqual([]);
    expect(indexesUsed(plan)).toContain('oidc_models_customer_id');
  }
});

test('a token’s find with its grant uses the primary key for both', async () => {
  const [query] = await issuedBy(() => new PostgresAdapter(knex, 'RefreshToken').find(`${RUN}-1235`));
  const plan = await planOf(query!);

  expect(describePlan(seqScansOfModels(plan))).toEqual([]);
  expect(indexesUsed(plan).filter((name) => name === 'oidc_models_pkey')).toHaveLength(2);
});
