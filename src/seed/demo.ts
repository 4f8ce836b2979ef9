import type { ClientMetadata } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import { createCustomer, findCustomerByUsername } from '../accounts/accounts.ts';
import { createClient, findClientMetadata } from '../clients/clients.ts';

/**
 * Development only: a customer and a third-party app to try the flow with, created on the first
 * start and left alone afterwards.
 */

export const DEMO_CUSTOMER = {
  username: 'demo',
  password: 'passbook-demo',
  name: 'Dana Demo',
  email: 'dana.demo@example.com',
} as const;

export const DEMO_CLIENT_ID = 'budget-buddy';
export const DEMO_REDIRECT_URI = 'http://localhost:4000/callback';

export interface DemoSeed {
  customerCreated: boolean;
  /** Present only on the start that created the app: its secret is shown this once. */
  clientSecret?: string;
}

export async function seedDemo(
  knex: Knex,
  validateClient: (metadata: ClientMetadata) => Promise<void>,
): Promise<DemoSeed> {
  const seed: DemoSeed = { customerCreated: false };
  if (!(await findCustomerByUsername(knex, DEMO_CUSTOMER.username))) {
    await createCustomer(knex, DEMO_CUSTOMER);
    seed.customerCreated = true;
  }
  if (!(await findClientMetadata(knex, DEMO_CLIENT_ID))) {
    const client = await createClient(
      knex,
      {
        clientId: DEMO_CLIENT_ID,
        name: 'Budget Buddy',
        redirectUris: [DEMO_REDIRECT_URI],
        postLogoutRedirectUris: ['http://localhost:4000/'],
        isPublic: false,
        scope: 'openid profile email offline_access accounts:read transactions:read',
      },
      validateClient,
    );
    if (client.client_secret) seed.clientSecret = client.client_secret;
  }
  return seed;
}
