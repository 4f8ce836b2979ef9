import * as oidc from 'openid-client';
import { atTime } from '../support/clock.ts';
import { createTestCustomer, registerTestApp, useTestPassbook } from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

const DAY = 24 * 60 * 60 * 1000;

const passbook = useTestPassbook();

async function storedExpiry(kind: string, grantId: string): Promise<number[]> {
  const rows: { expires_at: Date }[] = await passbook
    .knex('oidc_models')
    .where({ kind, grant_id: grantId })
    .whereNull('consumed_at')
    .select('expires_at');
  return rows.map((row) => row.expires_at.getTime());
}

test('codes live 60 s, access tokens 10 min, refresh tokens 30 days sliding, never past a year', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const start = Date.now();
  const { config, tokens } = await atTime(start, () =>
    completeFlow(passbook, app, customer, 'openid offline_access transactions:read'),
  );
  expect(tokens.expires_in).toBe(600);
  const grant = await passbook
    .knex('oidc_models')
    .where({ kind: 'Grant', customer_id: customer.id })
    .first<{ id: string } | undefined>('id');
  if (!grant) throw new Error('no grant was stored');
  const [consumedCode] = await passbook
    .knex('oidc_models')
    .where({ kind: 'AuthorizationCode', grant_id: grant.id })
    .select<{ expires_at: Date }[]>('expires_at');
  if (!consumedCode) throw new Error('the authorization code was not kept after use');
  expect(consumedCode.expires_at.getTime() - start).toBeGreaterThan(55_000);
  expect(consumedCode.expires_at.getTime() - start).toBeLessThanOrEqual(61_000);
  const [firstRefresh] = await storedExpiry('RefreshToken', grant.id);
  expect(Math.round(((firstRefresh ?? 0) - start) / DAY)).toBe(30);

  // Used after 20 days: the new refresh token lives 30 days from then.
  const twentyDays = start + 20 * DAY;
  const rotated = await atTime(twentyDays, () =>
    oidc.refreshTokenGrant(config, tokens.refresh_token as string),
  );
  const [slid] = await storedExpiry('RefreshToken', grant.id);
  expect(Math.round(((slid ?? 0) - twentyDays) / DAY)).toBe(30);

  // Kept in use every 25 days: by day 345, 30 more days would pass the year, so it ends at the year.
  let current = rotated.refresh_token as string;
  for (let day = 45; day <= 345; day += 25) {
    const refreshed = await atTime(start + day * DAY, () => oidc.refreshTokenGrant(config, current));
    current = refreshed.refresh_token as string;
  }
  const [capped] = await storedExpiry('RefreshToken', grant.id);
  expect(Math.round(((capped ?? 0) - start) / DAY)).toBe(365);
});
