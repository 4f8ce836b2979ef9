import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa, { type Context } from 'koa';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import {
  afterCommit,
  beforeCommit,
  forReading,
  forWriting,
  outsideRequestTransaction,
  requestTransaction,
} from '../../src/db/request-transaction.ts';
import { testDatabaseUrl } from '../support/passbook.ts';
import { requestListener } from '../../src/service/kit.ts';

/**
 * The request's transaction on its own, under a bare Koa app and real PostgreSQL: when it begins,
 * what a request's reads see, when it commits or rolls back, and what runs after the commit.
 * Rows are oidc_models rows of a kind of this file's own.
 */

const KIND = `TxTest${randomBytes(5).toString('hex')}`;
let knex: Knex;
let server: http.Server;
let base: string;
const statements: string[] = [];
let route: (ctx: Context) => void | Promise<void> = () => {};

beforeAll(async () => {
  knex = createKnex(testDatabaseUrl(), 4);
  knex.on('query', (query: { sql: string }) => statements.push(query.sql));
  const app = new Koa();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      ctx.status = 500;
      ctx.body = { failed: error instanceof Error ? error.name : 'unknown' };
    }
  });
  app.use(requestTransaction(knex));
  app.use((ctx) => route(ctx));
  server = http.createServer(requestListener(app));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await knex('oidc_models').where({ kind: KIND }).delete();
  await knex.destroy();
});

function newId(): string {
  return randomBytes(8).toString('hex');
}

async function store(id: string): Promise<void> {
  await (await forWriting(knex))('oidc_models').insert({ kind: KIND, id, payload: {} });
}

async function storedIds(ids: string[]): Promise<string[]> {
  const rows: { id: string }[] = await knex('oidc_models')
    .where({ kind: KIND })
    .whereIn('id', ids)
    .select('id');
  return rows.map((row) => row.id).sort();
}

/** Sends one request to `handler`; its status, and the statements it sent. */
async function request(
  handler: (ctx: Context) => void | Promise<void>,
): Promise<{ status: number; sent: string[] }> {
  route = handler;
  statements.length = 0;
  const response = await fetch(base);
  await response.text();
  return { status: response.status, sent: [...statements] };
}

test('a request that only reads uses the pool and never begins a transaction', async () => {
  const { status, sent } = await request(async (ctx) => {
    await (await forReading(knex))('oidc_models').where({ kind: KIND }).select('id');
    ctx.body = 'read';
  });
  expect(status).toBe(200);
  expect(sent).toHaveLength(1);
  expect(sent).not.toContain('BEGIN;');
});

test('the writes of one request commit together, at the end, and its reads see them first', async () => {
  const [first, second] = [newId(), newId()];
  let seenInside: string[] = [];
  let seenOutside: string[] = ['not read'];
  const { status, sent } = await request(async (ctx) => {
    await store(first);
    await store(second);
    const rows: { id: string }[] = await (
      await forReading(knex)
    )('oidc_models')
      .where({ kind: KIND })
      .whereIn('id', [first, second])
      .select('id');
    seenInside = rows.map((row) => row.id).sort();
    seenOutside = await storedIds([first, second]);
    ctx.status = 201;
  });
  expect(status).toBe(201);
  expect(seenInside).toEqual([first, second].sort());
  expect(seenOutside).toEqual([]);
  expect(sent[0]).toBe('BEGIN;');
  expect(sent.at(-1)).toBe('COMMIT;');
  expect(await storedIds([first, second])).toEqual([first, second].sort());
});

test('a 4xx answer commits; a 5xx answer or an escaping error rolls everything back', async () => {
  const [refused, failed, thrown] = [newId(), newId(), newId()];
  await request(async (ctx) => {
    await store(refused);
    ctx.status = 400;
  });
  await request(async (ctx) => {
    await store(failed);
    ctx.status = 503;
  });
  await request(async () => {
    await store(thrown);
    throw new Error('the route failed');
  });
  // The rollbacks are not waited for; PostgreSQL never makes their rows visible either way.
  expect(await storedIds([refused, failed, thrown])).toEqual([refused]);
});

test('a transaction PostgreSQL had already failed is not answered as a success', async () => {
  const id = newId();
  const { status } = await request(async (ctx) => {
    await store(id);
    // A failed statement whose error is swallowed: PostgreSQL answers the COMMIT with ROLLBACK.
    await (await forWriting(knex)).raw('SELECT 1 / 0').catch(() => undefined);
    ctx.body = 'looks fine';
  });
  expect(status).toBe(500);
  expect(await storedIds([id])).toEqual([]);
});

test('after-commit work runs once the writes are stored, and never after a rollback', async () => {
  const [kept, dropped] = [newId(), newId()];
  const ran: { id: string; stored: string[] }[] = [];
  const later = (id: string) => async () => {
    ran.push({ id, stored: await storedIds([id]) });
  };
  await request(async (ctx) => {
    await store(kept);
    await afterCommit(knex, later(kept));
    expect(ran).toEqual([]);
    ctx.body = 'ok';
  });
  await request(async (ctx) => {
    await store(dropped);
    await afterCommit(knex, later(dropped));
    ctx.status = 500;
  });
  expect(ran).toEqual([{ id: kept, stored: [kept] }]);
});

test('work outside the transaction finds the writes before it committed, and holds no connection', async () => {
  const [before, after] = [newId(), newId()];
  let storedDuringWork: string[] = [];
  let heldDuringWork = -1;
  const { sent } = await request(async (ctx) => {
    await store(before);
    await outsideRequestTransaction(knex, async () => {
      storedDuringWork = await storedIds([before]);
      heldDuringWork = (knex.client as { pool: { numUsed(): number } }).pool.numUsed();
    });
    await store(after);
    ctx.body = 'ok';
  });
  expect(storedDuringWork).toEqual([before]);
  expect(heldDuringWork).toBe(0);
  expect(sent.filter((sql) => sql === 'BEGIN;')).toHaveLength(2);
  expect(await storedIds([before, after])).toEqual([before, after].sort());
});

const INSERT_HELD = `INSERT INTO oidc_models (kind, id, payload) VALUES (?, ?, '{}'::jsonb) RETURNING id`;

test('held-back work of one statement, where the request wrote nothing else, commits without BEGIN', async () => {
  const id = newId();
  let answered: unknown[] = [];
  const { status, sent } = await request((ctx) => {
    expect(
      beforeCommit(knex, async (target) => {
        answered = await target.statement(INSERT_HELD, [KIND, id]);
      }),
    ).toBe(true);
    ctx.body = 'held';
  });
  expect(status).toBe(200);
  expect(answered).toEqual([{ id }]);
  expect(sent).not.toContain('BEGIN;');
  expect(sent).not.toContain('COMMIT;');
  expect(await storedIds([id])).toEqual([id]);
});

test("held-back work after the request's own write joins its transaction", async () => {
  const [written, held] = [newId(), newId()];
  const { sent } = await request(async (ctx) => {
    await store(written);
    beforeCommit(knex, async (target) => {
      await target.statement(INSERT_HELD, [KIND, held]);
    });
    ctx.body = 'ok';
  });
  expect(sent[0]).toBe('BEGIN;');
  expect(sent.at(-1)).toBe('COMMIT;');
  expect(await storedIds([written, held])).toEqual([written, held].sort());
});

test('held-back work that fails after its one statement leaves nothing stored, and answers 500', async () => {
  const id = newId();
  const { status } = await request((ctx) => {
    beforeCommit(knex, async (target) => {
      await target.statement(INSERT_HELD, [KIND, id]);
      throw new Error('the held work failed after its statement');
    });
    ctx.body = 'looks fine';
  });
  expect(status).toBe(500);
  expect(await storedIds([id])).toEqual([]);
  // The connection that held the statement is ended, never lent again: the pool stays sound.
  const again = newId();
  await request(async (ctx) => {
    await store(again);
    ctx.body = 'ok';
  });
  expect(await storedIds([again])).toEqual([again]);
});

test('outside a request every statement commits on its own', async () => {
  const id = newId();
  statements.length = 0;
  await store(id);
  expect(statements).not.toContain('BEGIN;');
  expect(await storedIds([id])).toEqual([id]);
});
