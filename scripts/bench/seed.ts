import { randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import { createCustomer } from '../../src/customers/customers.ts';
import { createClient } from '../../src/clients/clients.ts';
import type { Knex } from '../../src/db/knex.ts';
import { REDIRECT_URI } from './mint.ts';

/** The customers and apps the workloads act as, registered the way the CLI registers them. */

export interface Credentials {
  clientId: string;
  clientSecret: string;
}

export interface BenchCustomer {
  id: string;
  username: string;
  password: string;
}

export interface BenchSeed {
  /** A confidential app with the authorization-code and refresh grants. */
  app: Credentials;
  /** A bank API registered as a resource server: it introspects the app's tokens. */
  resourceServer: Credentials;
  /** Customers who sign in through the app, one at a time each. */
  signInCustomers: BenchCustomer[];
  /** The customer whose consents the minted codes and tokens carry. */
  tokenCustomer: BenchCustomer;
}

export const APP_SCOPE = 'openid profile email offline_access accounts:read transactions:read';

async function customer(knex: Knex, n: number): Promise<BenchCustomer> {
  const username = `bench-${n}-${randomBytes(3).toString('hex')}`;
  const password = `pw-${randomBytes(12).toString('base64url')}`;
  const created = await createCustomer(knex, {
    username,
    password,
    name: `Bench Customer ${n}`,
    email: `${username}@example.com`,
  });
  return { id: created.id, username, password };
}

function credentials(client: { client_id: string; client_secret?: string }): Credentials {
  if (!client.client_secret) throw new Error(`client ${client.client_id} has no secret`);
  return { clientId: client.client_id, clientSecret: client.client_secret };
}

export async function seedBench(knex: Knex, provider: Provider, signInCustomers: number): Promise<BenchSeed> {
  const validate = (metadata: Parameters<Provider['Client']['validate']>[0]) =>
    provider.Client.validate(metadata);
  const app = await createClient(
    knex,
    { name: 'Bench App', redirectUris: [REDIRECT_URI], isPublic: false, scope: APP_SCOPE },
    validate,
  );
  const resourceServer = await createClient(
    knex,
    { name: 'Bench Bank API', redirectUris: [], isPublic: false, isResourceServer: true },
    validate,
  );
  const customers = await Promise.all(
    Array.from({ length: signInCustomers + 1 }, (_, n) => customer(knex, n)),
  );
  const [tokenCustomer, ...signIn] = customers;
  if (!tokenCustomer) throw new Error('no customer seeded');
  return {
    app: credentials(app),
    resourceServer: credentials(resourceServer),
    signInCustomers: signIn,
    tokenCustomer,
  };
}
