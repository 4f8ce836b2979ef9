import { createTestCustomer, registerTestApp, useTestPassbook } from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

/**
 * What a returning customer's whole sign-in flow (authorization request, sign-in, consent, code
 * exchange) asks of PostgreSQL through knex: each row it needs read once per request, and no
 * BEGIN or COMMIT, because every request's writes are one statement committed by the protocol's
 * Sync (src/oidc/storage/held-writes.ts, src/db/implicit-transaction.ts), which knex never sees.
 */

const passbook = useTestPassbook();

async function statementsOf(work: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const record = (query: { sql?: string }) => seen.push(query.sql ?? '');
  passbook.knex.on('query', record);
  try {
    await work();
  } finally {
    passbook.knex.removeListener('query', record);
  }
  return seen;
}

test('a returning customer signs in and consents without BEGIN or COMMIT, each row read once per request', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const scope = 'openid offline_access transactions:read';
  await completeFlow(passbook, app, customer, scope);

  const statements = await statementsOf(() => completeFlow(passbook, app, customer, scope));
  expect(statements.filter((sql) => /^(BEGIN|COMMIT|ROLLBACK)/i.test(sql.trim()))).toEqual([]);
  const modelReads = statements.filter((sql) => /^select/i.test(sql.trim()) && sql.includes('oidc_models'));
  // Once in each request that needs it: the interaction (six requests), the session (three), the
  // grant (four, one of them the remembered consent's lookup), and the code with its grant.
  expect(modelReads).toHaveLength(14);
});
