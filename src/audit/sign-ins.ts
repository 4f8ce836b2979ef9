import type { Knex } from '../db/knex.ts';
import { findCustomerByUsername } from '../customers/customers.ts';
import { recordEvent, requestOrigin } from './events.ts';

/**
 * A failed sign-in to a real customer's name goes into that customer's activity log, wherever
 * it happened (an app's sign-in screen or the account pages). Unknown names are not recorded.
 */
export async function recordFailedSignIn(
  knex: Knex,
  ctx: Parameters<typeof requestOrigin>[0],
  username: string,
  clientId?: string,
): Promise<void> {
  const customer = await findCustomerByUsername(knex, username);
  if (!customer) return;
  await recordEvent(knex, {
    customerId: customer.id,
    type: 'sign_in_failed',
    clientId,
    ...requestOrigin(ctx),
  });
}
