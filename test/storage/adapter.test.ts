import { randomBytes } from 'node:crypto';
import { jest } from '@jest/globals';
import pg from 'pg';
import { errors, type AdapterPayload } from 'oidc-provider';
import { createKnex, type Knex } from '../../src/db/knex.ts';
import { PostgresAdapter, withPrefetchScope } from '../../src/oidc/storage/adapter.ts';
import { purgeExpired, purgeOnce } from '../../src/oidc/storage/purge.ts';
import { testDatabaseUrl } from '../support/passbook.ts';
import { atTime } from '../support/clock.ts';

/** Every id, kind and grant this file creates starts with this, so parallel files never collide. */
const RUN = `t${randomBytes(5).toString('hex')}`;
const KIND = `Test${RUN}`;
const PURGE_LOCK = 7_425_002;
const HOUR = 60 * 60 * 1000;

let knex: Knex;

function unique(label: string): string {
  return `${RUN}-${label}-${randomBytes(6).toString('hex')}`;
}

function adapter(kind = KIND): PostgresAdapter {
  return new PostgresAdapter(knex, kind);
}

interface StoredRow {
  kind: string;
  id: string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  customer_id: string | null;
  expires_at: Date | null;
  consumed_at: Date | null;
}

async function storedRow(kind: string, id: string): Promise<StoredRow | undefined> {
  return knex<StoredRow>('oidc_models').where({ kind, id }).first();
}

async function countRows(filter: Record<string, string>): Promise<number> {
  const [row] = await knex('oidc_models').where(filter).count<{ count: string }[]>({ count: '*' });
  return Number(row?.count);
}

beforeAll(() => {
  knex = createKnex(testDatabaseUrl());
});

afterAll(async () => {
  jest.useRealTimers();
  await knex('oidc_models').where('id', 'like', `${RUN}-%`).delete();
  await knex.destroy();
});

async function queriesDuring(work: () => Promise<unknown>): Promise<number> {
  let count = 0;
  const listener = () => {
    count += 1;
  };
  knex.on('query', listener);
  try {
    await work();
  } finally {
    knex.removeListener('query', listener);
  }
  return count;
}

describe('upsert and find', () => {
  test('find returns the payload that was upserted', async () => {
    const id = unique('at');
    const payload: AdapterPayload = {
      jti: id,
      kind: 'AccessToken',
      grantId: unique('grant'),
      accountId: 'account-1',
      clientId: 'client-1',
      scope: 'openid profile',
      exp: 1_900_000_000,
    };
    await adapter().upsert(id, payload, 600);

    expect(await adapter().find(id)).toEqual(payload);
  });

  test('the lookup columns are filled from the payload and expiresIn', async () => {
    const id = unique('session');
    const grantId = unique('grant');
    const before = Date.now();
    await adapter().upsert(id, { grantId, uid: 'uid-1', userCode: 'CODE-1', accountId: 'acc-1' }, 600);

    const row = await storedRow(KIND, id);
    expect(row).toMatchObject({ grant_id: grantId, uid: 'uid-1', user_code: 'CODE-1', customer_id: 'acc-1' });
    expect(row?.expires_at?.getTime()).toBeGreaterThanOrEqual(before + 600_000 - 1000);
    expect(row?.expires_at?.getTime()).toBeLessThanOrEqual(Date.now() + 600_000 + 1000);
    expect(row?.consumed_at).toBeNull();
  });

  test('an upsert without expiresIn stores no expiry', async () => {
    const id = unique('grant');
    await adapter().upsert(id, { accountId: 'acc-1' }, undefined);

    expect((await storedRow(KIND, id))?.expires_at).toBeNull();
    expect(await adapter().find(id)).toEqual({ accountId: 'acc-1' });
  });

  test('a second upsert of the same id replaces the payload', async () => {
    const id = unique('session');
    await adapter().upsert(id, { accountId: 'first', uid: 'uid-a' }, 600);
    await adapter().upsert(id, { accountId: 'second', uid: 'uid-b' }, 600);

    expect(await adapter().find(id)).toEqual({ accountId: 'second', uid: 'uid-b' });
    expect((await storedRow(KIND, id))?.uid).toBe('uid-b');
  });

  test('find does not see rows of another kind', async () => {
    const id = unique('at');
    await adapter().upsert(id, { accountId: 'acc-1' }, 600);

    expect(await adapter(`${KIND}Other`).find(id)).toBeUndefined();
  });

  test('find returns undefined for an unknown id', async () => {
    expect(await adapter().find(unique('missing'))).toBeUndefined();
  });
});

describe('expiry', () => {
  test('find ignores a row once it has expired', async () => {
    const id = unique('code');
    const start = Date.now();
    await atTime(start, () => adapter().upsert(id, { accountId: 'acc-1' }, 60));

    expect(await atTime(start + 59_000, () => adapter().find(id))).toEqual({ accountId: 'acc-1' });
    expect(await atTime(start + 61_000, () => adapter().find(id))).toBeUndefined();
  });

  test('findByUid and findByUserCode ignore expired rows too', async () => {
    const id = unique('device');
    const uid = unique('uid');
    const userCode = unique('usercode');
    const start = Date.now();
    await atTime(start, () => adapter().upsert(id, { uid, userCode }, 60));

    expect(await atTime(start + 59_000, () => adapter().findByUid(uid))).toEqual({ uid, userCode });
    expect(await atTime(start + 61_000, () => adapter().findByUid(uid))).toBeUndefined();
    expect(await atTime(start + 61_000, () => adapter().findByUserCode(userCode))).toBeUndefined();
  });

  test('a row without expiry is still found far in the future', async () => {
    const id = unique('grant');
    await adapter().upsert(id, { accountId: 'acc-1' }, undefined);

    expect(await atTime(Date.now() + 10 * 365 * 24 * HOUR, () => adapter().find(id))).toEqual({
      accountId: 'acc-1',
    });
  });
});

describe('consume', () => {
  test('consume marks the row consumed, in epoch seconds, in later finds', async () => {
    const id = unique('code');
    await adapter().upsert(id, { accountId: 'acc-1' }, 600);
    expect(await adapter().find(id)).not.toHaveProperty('consumed');

    const before = Math.floor(Date.now() / 1000);
    await adapter().consume(id);
    const after = Math.ceil(Date.now() / 1000);

    const found = await adapter().find(id);
    expect(found).toMatchObject({ accountId: 'acc-1' });
    expect(Number.isInteger(found?.consumed)).toBe(true);
    expect(found?.consumed).toBeGreaterThanOrEqual(before);
    expect(found?.consumed).toBeLessThanOrEqual(after);
  });

  test('a second consume of the same id throws InvalidGrant', async () => {
    const id = unique('code');
    await adapter('AuthorizationCode').upsert(id, { accountId: 'acc-1' }, 600);
    await adapter('AuthorizationCode').consume(id);

    await expect(adapter('AuthorizationCode').consume(id)).rejects.toBeInstanceOf(errors.InvalidGrant);
  });

  test('a second consume of a pushed authorization request throws InvalidRequestUri', async () => {
    const id = unique('par');
    await adapter('PushedAuthorizationRequest').upsert(id, { request: 'x' }, 60);
    await adapter('PushedAuthorizationRequest').consume(id);

    await expect(adapter('PushedAuthorizationRequest').consume(id)).rejects.toBeInstanceOf(
      errors.InvalidRequestUri,
    );
  });

  test('of two simultaneous consumes of one id, exactly one succeeds (20 times)', async () => {
    for (let round = 0; round < 20; round += 1) {
      const id = unique(`race${round}`);
      await adapter('RefreshToken').upsert(id, { accountId: 'acc-1' }, 600);

      const results = await Promise.allSettled([
        adapter('RefreshToken').consume(id),
        adapter('RefreshToken').consume(id),
      ]);

      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.find((result) => result.status === 'rejected');
      expect(rejected?.reason).toBeInstanceOf(errors.InvalidGrant);
    }
  });
});

describe('findByUid, findByUserCode, destroy', () => {
  test('findByUid returns the row with that uid, of this kind only', async () => {
    const id = unique('session');
    const uid = unique('uid');
    await adapter('Session').upsert(id, { uid, accountId: 'acc-1' }, 600);

    expect(await adapter('Session').findByUid(uid)).toEqual({ uid, accountId: 'acc-1' });
    expect(await adapter('Interaction').findByUid(uid)).toBeUndefined();
    expect(await adapter('Session').findByUid(unique('uid'))).toBeUndefined();
  });

  test('findByUserCode returns the row with that user code', async () => {
    const id = unique('device');
    const userCode = unique('usercode');
    await adapter('DeviceCode').upsert(id, { userCode, clientId: 'client-1' }, 600);

    expect(await adapter('DeviceCode').findByUserCode(userCode)).toEqual({ userCode, clientId: 'client-1' });
    expect(await adapter('DeviceCode').findByUserCode(unique('usercode'))).toBeUndefined();
  });

  test('destroy removes that row and no other', async () => {
    const gone = unique('at');
    const kept = unique('at');
    await adapter().upsert(gone, { accountId: 'acc-1' }, 600);
    await adapter().upsert(kept, { accountId: 'acc-2' }, 600);

    await adapter().destroy(gone);

    expect(await adapter().find(gone)).toBeUndefined();
    expect(await storedRow(KIND, gone)).toBeUndefined();
    expect(await adapter().find(kept)).toEqual({ accountId: 'acc-2' });
  });
});

describe('revokeByGrantId', () => {
  async function insertRows(kind: string, grantId: string, count: number): Promise<void> {
    const rows = Array.from({ length: count }, () => ({
      kind,
      id: unique('bulk'),
      payload: { grantId },
      grant_id: grantId,
      expires_at: new Date(Date.now() + HOUR),
    }));
    await knex.batchInsert('oidc_models', rows, 500);
  }

  test('removes all 2,500 rows of that kind and grant, across batches', async () => {
    const grantId = unique('grant');
    await insertRows(KIND, grantId, 2500);

    await adapter().revokeByGrantId(grantId);

    expect(await countRows({ kind: KIND, grant_id: grantId })).toBe(0);
  });

  test("leaves another grant's rows and the same grant's rows of other kinds alone", async () => {
    const grantId = unique('grant');
    const otherGrantId = unique('grant');
    await insertRows(KIND, grantId, 1200);
    await insertRows(KIND, otherGrantId, 3);
    await insertRows(`${KIND}Other`, grantId, 2);

    await adapter().revokeByGrantId(grantId);

    expect(await countRows({ kind: KIND, grant_id: grantId })).toBe(0);
    expect(await countRows({ kind: KIND, grant_id: otherGrantId })).toBe(3);
    expect(await countRows({ kind: `${KIND}Other`, grant_id: grantId })).toBe(2);
  });
});

describe('refresh-token rotation', () => {
  async function consumedIds(grantId: string): Promise<string[]> {
    const rows: { id: string }[] = await knex('oidc_models')
      .where({ kind: 'RefreshToken', grant_id: grantId })
      .whereNotNull('consumed_at')
      .select('id');
    return rows.map((row) => row.id).sort();
  }

  test('prunes to the 10 most recently consumed refresh tokens of the grant on every tenth rotation', async () => {
    const grantId = unique('grant');
    const tokens = Array.from({ length: 21 }, (_, index) => unique(`rt${String(index).padStart(2, '0')}`));
    const start = Date.now();
    // As oidc-provider rotates: consume the presented token, then save its successor.
    for (const [index, id] of tokens.entries()) {
      await atTime(start + index * 1000, async () => {
        const previous = tokens[index - 1];
        if (previous) await adapter('RefreshToken').consume(previous);
        await adapter('RefreshToken').upsert(id, { grantId, accountId: 'acc-1', rotations: index }, 3600);
      });
      // Between prunes the grant keeps more, never fewer than the 10 most recent.
      if (index === 19) expect(await consumedIds(grantId)).toEqual(tokens.slice(0, 19).sort());
    }

    expect(await consumedIds(grantId)).toEqual(tokens.slice(10, 20).sort());
    expect(await adapter('RefreshToken').find(tokens[20] ?? '')).toEqual({
      grantId,
      accountId: 'acc-1',
      rotations: 20,
    });
  });

  test("does not prune another grant's consumed refresh tokens", async () => {
    const grantId = unique('grant');
    const otherGrantId = unique('grant');
    const others = Array.from({ length: 12 }, () => unique('rt'));
    for (const id of others) await adapter('RefreshToken').upsert(id, { grantId: otherGrantId }, 3600);
    for (const id of others) await adapter('RefreshToken').consume(id);

    for (let index = 0; index < 3; index += 1) {
      await adapter('RefreshToken').upsert(unique('rt'), { grantId, rotations: 10 * (index + 1) }, 3600);
    }

    expect(await consumedIds(otherGrantId)).toHaveLength(12);
  });
});

describe('purge', () => {
  /** A row that expired an hour ago, one that expires tomorrow, and one that never expires. */
  async function rowsAroundNow(): Promise<{ expired: string; live: string; forever: string }> {
    const expired = unique('expired');
    const live = unique('live');
    const forever = unique('forever');
    await atTime(Date.now() - 2 * HOUR, () => adapter().upsert(expired, { accountId: 'acc-1' }, 3600));
    await adapter().upsert(live, { accountId: 'acc-1' }, 24 * 3600);
    await adapter().upsert(forever, { accountId: 'acc-1' }, undefined);
    return { expired, live, forever };
  }

  test('purgeExpired deletes expired rows only', async () => {
    const { expired, live, forever } = await rowsAroundNow();

    const purged = await purgeExpired(knex);

    expect(purged).toBeGreaterThanOrEqual(1);
    expect(await storedRow(KIND, expired)).toBeUndefined();
    expect(await storedRow(KIND, live)).toBeDefined();
    expect(await storedRow(KIND, forever)).toBeDefined();
  });

  test('purgeOnce skips (undefined) while another connection holds the purge lock', async () => {
    const { expired } = await rowsAroundNow();
    const other = new pg.Client({ connectionString: testDatabaseUrl() });
    await other.connect();
    try {
      await other.query('SELECT pg_advisory_lock($1)', [PURGE_LOCK]);

      expect(await purgeOnce(knex)).toBeUndefined();
      expect(await storedRow(KIND, expired)).toBeDefined();
    } finally {
      await other.query('SELECT pg_advisory_unlock($1)', [PURGE_LOCK]);
      await other.end();
    }
  });

  test('purgeOnce purges and returns a count when the lock is free, then releases the lock', async () => {
    const { expired, live } = await rowsAroundNow();

    const purged = await purgeOnce(knex);

    expect(typeof purged).toBe('number');
    expect(purged).toBeGreaterThanOrEqual(1);
    expect(await storedRow(KIND, expired)).toBeUndefined();
    expect(await storedRow(KIND, live)).toBeDefined();

    const other = new pg.Client({ connectionString: testDatabaseUrl() });
    await other.connect();
    try {
      const { rows } = await other.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
        PURGE_LOCK,
      ]);
      expect(rows[0]?.locked).toBe(true);
      await other.query('SELECT pg_advisory_unlock($1)', [PURGE_LOCK]);
    } finally {
      await other.end();
    }
  });
});

describe('grants read with their tokens', () => {
  async function tokenUnderGrant(grant: AdapterPayload | undefined) {
    const grantId = unique('grant');
    const tokenId = unique('at');
    if (grant) await adapter('Grant').upsert(grantId, grant, 3600);
    await adapter('AccessToken').upsert(tokenId, { grantId, accountId: 'acc-1' }, 3600);
    return { grantId, tokenId };
  }

  test('in a request, the grant found with the token answers the next Grant find without a query', async () => {
    const grant = { accountId: 'acc-1', clientId: 'app-1' };
    const { grantId, tokenId } = await tokenUnderGrant(grant);

    await withPrefetchScope(async () => {
      expect(await adapter('AccessToken').find(tokenId)).toEqual({ grantId, accountId: 'acc-1' });
      let found: AdapterPayload | undefined;
      expect(await queriesDuring(async () => (found = await adapter('Grant').find(grantId)))).toBe(0);
      expect(found).toEqual(grant);
      // Once only: a second find reads the row again.
      expect(await queriesDuring(() => adapter('Grant').find(grantId))).toBe(1);
    });
  });

  test('a grant that is gone is answered as gone, and a write to the grant drops what was read', async () => {
    const missing = await tokenUnderGrant(undefined);
    const present = await tokenUnderGrant({ accountId: 'acc-1', clientId: 'app-1' });

    await withPrefetchScope(async () => {
      await adapter('AccessToken').find(missing.tokenId);
      expect(await adapter('Grant').find(missing.grantId)).toBeUndefined();

      await adapter('AccessToken').find(present.tokenId);
      await adapter('Grant').upsert(present.grantId, { accountId: 'acc-1', clientId: 'app-2' }, 3600);
      expect(await adapter('Grant').find(present.grantId)).toEqual({ accountId: 'acc-1', clientId: 'app-2' });
    });
  });

  test('outside a request nothing is kept: every Grant find reads the table', async () => {
    const { grantId, tokenId } = await tokenUnderGrant({ accountId: 'acc-1', clientId: 'app-1' });

    await adapter('AccessToken').find(tokenId);
    expect(await queriesDuring(() => adapter('Grant').find(grantId))).toBe(1);
  });
});

describe('interactions and sessions found again within a request', () => {
  test("a second find is answered from the first, as a copy the first's caller cannot change", async () => {
    const id = unique('interaction');
    await adapter('Interaction').upsert(id, { uid: id, params: { scope: 'openid' } }, 600);

    await withPrefetchScope(async () => {
      const first = await adapter('Interaction').find(id);
      expect(first).toEqual({ uid: id, params: { scope: 'openid' } });
      if (first) first.params = { scope: 'changed by its caller' };
      let again: AdapterPayload | undefined;
      expect(await queriesDuring(async () => (again = await adapter('Interaction').find(id)))).toBe(0);
      expect(again).toEqual({ uid: id, params: { scope: 'openid' } });
    });
    // The next request reads the table again.
    await withPrefetchScope(async () => {
      expect(await queriesDuring(() => adapter('Interaction').find(id))).toBe(1);
    });
  });

  test("the request's own write of the kind is what it finds next, and a row it destroyed is gone", async () => {
    const sessionId = unique('session');
    const uid = unique('session-uid');
    await adapter('Session').upsert(sessionId, { uid, accountId: 'acc-1' }, 600);

    await withPrefetchScope(async () => {
      expect(await adapter('Session').findByUid(uid)).toEqual({ uid, accountId: 'acc-1' });
      expect(await adapter('Session').find(sessionId)).toEqual({ uid, accountId: 'acc-1' });
      await adapter('Session').upsert(sessionId, { uid, accountId: 'acc-2' }, 600);
      expect(await adapter('Session').findByUid(uid)).toEqual({ uid, accountId: 'acc-2' });
      expect(await adapter('Session').find(sessionId)).toEqual({ uid, accountId: 'acc-2' });
      await adapter('Session').destroy(sessionId);
      expect(await adapter('Session').find(sessionId)).toBeUndefined();
      expect(await adapter('Session').findByUid(uid)).toBeUndefined();
    });
  });

  test('other kinds are read every time', async () => {
    const id = unique('code');
    await adapter(KIND).upsert(id, { accountId: 'acc-1' }, 600);
    await withPrefetchScope(async () => {
      await adapter(KIND).find(id);
      expect(await queriesDuring(() => adapter(KIND).find(id))).toBe(1);
    });
  });
});

describe('replay records', () => {
  test('are insert-only: a live one stored again is a replay, an expired one not yet purged is taken over', async () => {
    const id = unique('replay');
    const start = Date.now();
    const replays = adapter('ReplayDetection');
    await atTime(start, () => replays.upsert(id, { iss: 'client-1', jti: id }, 60));
    await expect(
      atTime(start + 59_000, () => replays.upsert(id, { iss: 'client-1', jti: id }, 60)),
    ).rejects.toThrow(errors.InvalidRequest);
    await atTime(start + 61_000, () => replays.upsert(id, { iss: 'client-2', jti: id }, 60));
    expect(await atTime(start + 62_000, () => replays.find(id))).toEqual({ iss: 'client-2', jti: id });
  });
});
