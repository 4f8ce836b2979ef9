import { createKnex } from '../../src/db/knex.ts';
import { migrate } from '../../src/db/migrate.ts';
import { testDatabaseUrl } from '../support/passbook.ts';
import { dropRunDatabase } from '../support/database.ts';

/**
 * payments:write is no scope any more: an older database's apps registered with it, and the
 * consents that granted it, are upgraded so that the apps still load and the consents no longer
 * carry it (migrations/20261202190000_retire_payments_write.sql).
 */

const RETIREMENT = '20261202190000_retire_payments_write.sql';

function adminUrl(): string {
  const url = new URL(testDatabaseUrl());
  url.pathname = '/postgres';
  return url.href;
}

function clientRow(clientId: string, scope: string | undefined) {
  return {
    client_id: clientId,
    metadata: { client_id: clientId, client_name: clientId, ...(scope === undefined ? {} : { scope }) },
  };
}

function grantRow(id: string, scope: string) {
  return { kind: 'Grant', id, payload: { kind: 'Grant', jti: id, openid: { scope } } };
}

test('an older database is upgraded: apps and consents keep everything but payments:write', async () => {
  const admin = createKnex(adminUrl(), 1);
  const name = `passbook_test_${Date.now()}_retired_scope`;
  const url = new URL(testDatabaseUrl());
  url.pathname = `/${name}`;
  await admin.raw(`CREATE DATABASE ${name}`);
  const knex = createKnex(url.href);
  try {
    await migrate(knex, { before: RETIREMENT });
    await knex('clients').insert([
      clientRow('payer', 'openid accounts:read payments:write'),
      clientRow('only-payments', 'payments:write'),
      clientRow('reader', 'openid accounts:read'),
      clientRow('anything', undefined),
    ]);
    await knex('oidc_models').insert([
      grantRow('paid', 'openid payments:write transactions:read'),
      grantRow('read', 'openid transactions:read'),
    ]);
    expect(await migrate(knex)).toContain(RETIREMENT);

    const clients = await knex('clients')
      .orderBy('client_id')
      .select<{ client_id: string; metadata: { scope?: string } }[]>('client_id', 'metadata');
    expect(clients.map((row) => [row.client_id, row.metadata.scope])).toEqual([
      ['anything', undefined],
      ['only-payments', 'openid'],
      ['payer', 'openid accounts:read'],
      ['reader', 'openid accounts:read'],
    ]);
    const grants = await knex('oidc_models')
      .where({ kind: 'Grant' })
      .orderBy('id')
      .select<{ id: string; payload: { openid: { scope: string } } }[]>('id', 'payload');
    expect(grants.map((row) => [row.id, row.payload.openid.scope])).toEqual([
      ['paid', 'openid transactions:read'],
      ['read', 'openid transactions:read'],
    ]);
  } finally {
    await knex.destroy();
    await dropRunDatabase(adminUrl(), url.href);
    await admin.destroy();
  }
});
