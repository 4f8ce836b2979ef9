import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { auditRetentionPurgeTask, recordEvent } from '../../src/audit/events.ts';
import { loadConfig } from '../../src/config.ts';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import { startTestPassbook, testDatabaseUrl } from '../support/passbook.ts';

/** The activity log keeps events for AUDIT_RETENTION_DAYS (400 by default); the purge removes older ones. */

const DAY_MS = 24 * 60 * 60 * 1000;

let knex: Knex;

beforeAll(() => {
  knex = createKnex(testDatabaseUrl(), 4);
});

afterAll(async () => {
  await knex.destroy();
});

/** Records one event for `customerId`, dated `daysAgo` days back (the test stands in for time passing). */
async function eventAged(customerId: string, daysAgo: number): Promise<void> {
  await recordEvent(knex, { customerId, type: 'sign_in_succeeded', detail: { daysAgo } });
  await knex('audit_events')
    .where({ customer_id: customerId })
    .whereRaw("(detail->>'daysAgo')::int = ?", [daysAgo])
    .update({ created_at: new Date(Date.now() - daysAgo * DAY_MS) });
}

async function agesLeft(customerId: string): Promise<number[]> {
  const rows: { detail: { daysAgo: number } }[] = await knex('audit_events')
    .where({ customer_id: customerId })
    .select('detail');
  return rows.map((row) => row.detail.daysAgo).sort((a, b) => a - b);
}

test('AUDIT_RETENTION_DAYS is 400 by default and must be a whole number of days', () => {
  expect(loadConfig({}).auditRetentionDays).toBe(400);
  expect(loadConfig({ AUDIT_RETENTION_DAYS: '30' }).auditRetentionDays).toBe(30);
  expect(() => loadConfig({ AUDIT_RETENTION_DAYS: '0' })).toThrow(/AUDIT_RETENTION_DAYS/);
  expect(() => loadConfig({ AUDIT_RETENTION_DAYS: 'a year' })).toThrow(/AUDIT_RETENTION_DAYS/);
});

test('the purge deletes only events older than the retention, whoever they belong to', async () => {
  const customer = randomUUID();
  for (const daysAgo of [0, 1, 399, 401, 800]) await eventAged(customer, daysAgo);
  // An event with no customer (a failed sign-in for an unknown name) ages out the same way.
  const unknownName = await knex('audit_events')
    .insert({ customer_id: null, type: 'sign_in_failed', created_at: new Date(Date.now() - 500 * DAY_MS) })
    .returning('id');

  const purged = await auditRetentionPurgeTask(400)(knex);

  expect(purged).toBeGreaterThanOrEqual(3);
  expect(await agesLeft(customer)).toEqual([0, 1, 399]);
  expect(
    await knex('audit_events').whereIn(
      'id',
      unknownName.map((row: { id: string }) => row.id),
    ),
  ).toEqual([]);
});

test('a backlog larger than one batch goes entirely, in one purge', async () => {
  const customer = randomUUID();
  const old = new Date(Date.now() - 1000 * DAY_MS);
  await knex('audit_events').insert(
    Array.from({ length: 2500 }, () => ({ customer_id: customer, type: 'signed_out', created_at: old })),
  );
  await eventAged(customer, 2);

  expect(await auditRetentionPurgeTask(400)(knex)).toBeGreaterThanOrEqual(2500);
  expect(await agesLeft(customer)).toEqual([2]);
});

test("a running Passbook's purge timer applies the retention", async () => {
  const customer = randomUUID();
  for (const daysAgo of [5, 40]) await eventAged(customer, daysAgo);
  const passbook = await startTestPassbook({ PURGE_INTERVAL: '1', AUDIT_RETENTION_DAYS: '30' });
  try {
    const deadline = Date.now() + 10_000;
    while ((await agesLeft(customer)).length > 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await agesLeft(customer)).toEqual([5]);
  } finally {
    await passbook.close();
  }
});

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}

test('the purge finds old events through the created_at index, not by reading the whole log', async () => {
  const issued: { sql: string; bindings: unknown[] }[] = [];
  const listener = (query: { sql: string; bindings?: unknown[] }) => {
    issued.push({ sql: query.sql, bindings: query.bindings ?? [] });
  };
  knex.on('query', listener);
  try {
    await auditRetentionPurgeTask(36_500)(knex);
  } finally {
    knex.removeListener('query', listener);
  }
  const [purge] = issued;
  expect(purge?.sql).toMatch(/^delete from "audit_events"/);

  const explainer = new pg.Client({ connectionString: testDatabaseUrl() });
  await explainer.connect();
  try {
    // Whatever the table's size now, the plan must be able to reach the rows by their age alone.
    await explainer.query('BEGIN');
    await explainer.query('SET LOCAL enable_seqscan = off');
    const { rows } = await explainer.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
      `EXPLAIN (FORMAT JSON) ${purge?.sql ?? ''}`,
      purge?.bindings,
    );
    await explainer.query('ROLLBACK');
    const nodes = flatten(rows[0]!['QUERY PLAN'][0]!.Plan);
    const scans = nodes.filter((node) => node['Relation Name'] === 'audit_events');
    expect(scans.map((node) => node['Node Type'])).not.toContain('Seq Scan');
    expect(nodes.map((node) => node['Index Name'])).toContain('audit_events_created_at');
  } finally {
    await explainer.end();
  }
});
