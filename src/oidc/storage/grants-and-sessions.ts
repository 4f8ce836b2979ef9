import type { AdapterPayload } from 'oidc-provider';
import type { Knex } from '../../db/knex.ts';
import { forReading, forWriting } from '../../db/request-transaction.ts';
import { makeHeldBackWritesNow, prefetchGrant } from './adapter.ts';
import { TABLE, deleteInBatches, liveRows } from './table.ts';
import { sharedIbans } from '../account-information.ts';

/**
 * The customer's view of their own grants and sessions in `oidc_models`, for the account pages and
 * for the consent the provider remembers: what each app was allowed, when it was last used, which
 * sessions are open, and revoking any of them at once. Each first makes the request's writes that
 * the adapter holds back (adapter.ts), so that it reads them and writes after them.
 */

async function reading(knex: Knex, kind: 'Grant' | 'Session'): Promise<Knex> {
  await makeHeldBackWritesNow(knex, [kind]);
  return forReading(knex);
}

async function writing(knex: Knex): Promise<Knex> {
  await makeHeldBackWritesNow(knex);
  return forWriting(knex);
}

export interface CustomerGrant {
  grantId: string;
  clientId: string;
  scope: string;
  /** The IBANs the customer chose to let the app read (account-information.ts). */
  accounts: string[];
  grantedAt: Date;
  lastUsedAt: Date | null;
}

/** The OpenID scope a stored grant holds, as oidc-provider saves it: `openid.scope`. */
function grantedScope(payload: AdapterPayload): string {
  const { openid } = payload;
  if (typeof openid !== 'object' || openid === null || !('scope' in openid)) return '';
  return typeof openid.scope === 'string' ? openid.scope : '';
}

/** The customer's live grants, newest first: one per app and sign-in that consented. */
export async function grantsOfCustomer(knex: Knex, customerId: string): Promise<CustomerGrant[]> {
  const rows: {
    id: string;
    client_id: string;
    payload: AdapterPayload;
    created_at: Date;
    last_used_at: Date | null;
  }[] = await liveRows(await reading(knex, 'Grant'), 'Grant')
    .andWhere({ customer_id: customerId })
    .orderBy('created_at', 'desc')
    .select('id', 'client_id', 'payload', 'created_at', 'last_used_at');
  return rows.map((row) => ({
    grantId: row.id,
    clientId: row.client_id,
    scope: grantedScope(row.payload),
    accounts: sharedIbans(Array.isArray(row.payload.rar) ? row.payload.rar : undefined),
    grantedAt: row.created_at,
    lastUsedAt: row.last_used_at,
  }));
}

/**
 * The customer's newest live grant to this app, so that consent given once is remembered. A
 * payment's grant (one with a payment_initiation detail) was consent to that payment only: it is
 * never what the customer is remembered to have allowed. The request's next find of the grant is
 * answered with the row read here.
 */
export async function latestGrantId(
  knex: Knex,
  customerId: string,
  clientId: string,
): Promise<string | undefined> {
  const row: { id: string; payload: AdapterPayload } | undefined = await liveRows(
    await reading(knex, 'Grant'),
    'Grant',
  )
    .andWhere({ customer_id: customerId, client_id: clientId })
    // A payment's grant is its own; an ordinary one may hold the customer's account choice.
    .whereRaw(`NOT coalesce(payload->'rar' @> '[{"type":"payment_initiation"}]', false)`)
    .orderBy('created_at', 'desc')
    .first('id', 'payload');
  if (row) prefetchGrant(row.id, row.payload);
  return row?.id;
}

/**
 * Ends the given grants at once: every code, access token and refresh token issued under them,
 * then the grants themselves. The app's next call anywhere fails.
 */
export async function revokeGrants(knex: Knex, grantIds: string[]): Promise<void> {
  const db = await writing(knex);
  for (const grantId of grantIds) await revokeTokensOfGrant(db, grantId);
  if (grantIds.length) await db(TABLE).where({ kind: 'Grant' }).whereIn('id', grantIds).delete();
}

/** Ends every code and token issued under a grant but keeps the grant: the consent is remembered. */
export async function revokeTokensOfGrant(knex: Knex, grantId: string): Promise<void> {
  // Only artefacts issued under a grant carry grant_id; the Grant row itself does not.
  await deleteInBatches(await writing(knex), (query) => query.where({ grant_id: grantId }));
}

export interface CustomerSession {
  /** The session's public handle; its id is the cookie's secret and never leaves the server. */
  uid: string;
  signedInAt: Date | undefined;
}

export async function sessionsOfCustomer(knex: Knex, customerId: string): Promise<CustomerSession[]> {
  const rows: { payload: AdapterPayload }[] = await liveRows(await reading(knex, 'Session'), 'Session')
    .andWhere({ customer_id: customerId })
    .orderBy('created_at', 'desc')
    .select('payload');
  return rows.map(({ payload }) => ({
    uid: String(payload.uid),
    signedInAt: typeof payload.loginTs === 'number' ? new Date(payload.loginTs * 1000) : undefined,
  }));
}
