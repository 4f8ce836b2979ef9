import type { ClientMetadata } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import type { DataCipher } from '../crypto/data-cipher.ts';
import { createCustomer, findCustomerByUsername } from '../customers/customers.ts';
import type { NewClient } from '../clients/clients.ts';
import { demoClientsFile, ensureDemoClient, type DemoClientCredentials } from './demo-clients.ts';
import { ensureDemoTwoStepCustomer, type DemoTwoStep } from './demo-two-step.ts';

/**
 * Development only: a customer and a third-party app to try the flow with, created on the first
 * start and left alone afterwards. The app's credentials are kept in <DATA_DIR>/demo-clients.json
 * (see demo-clients.ts), where `npm run demo` finds them. A second customer signs in with an
 * authenticator app too (see demo-two-step.ts).
 */

export const DEMO_CUSTOMER = {
  username: 'demo',
  password: 'passbook-demo',
  name: 'Dana Demo',
  email: 'dana.demo@example.com',
} as const;

export const DEMO_CLIENT_ID = 'budget-buddy';
const DEMO_APP_URL = 'http://localhost:4000';
export const DEMO_REDIRECT_URI = `${DEMO_APP_URL}/callback`;

/** Budget Buddy's registration when it runs at `appUrl`. */
function demoAppRegistration(appUrl = DEMO_APP_URL): NewClient & { clientId: string } {
  return {
    clientId: DEMO_CLIENT_ID,
    name: 'Budget Buddy',
    redirectUris: [`${appUrl}/callback`],
    postLogoutRedirectUris: [`${appUrl}/`],
    isPublic: false,
    scope: 'openid profile email offline_access accounts:read transactions:read',
  };
}

export interface DemoSeed {
  customerCreated: boolean;
  /** Present only on the start that registered the app: its secret is shown this once. */
  clientSecret?: string;
  /** Where the app's credentials are kept. */
  credentialsFile: string;
  app: DemoClientCredentials;
  /** The customer with two-step verification on, and the secret to add to an authenticator app. */
  twoStep: DemoTwoStep;
}

export async function seedDemo(
  knex: Knex,
  validateClient: (metadata: ClientMetadata) => Promise<void>,
  cipher: DataCipher,
  dataDir: string,
  appUrl = DEMO_APP_URL,
): Promise<DemoSeed> {
  let customerCreated = false;
  if (!(await findCustomerByUsername(knex, DEMO_CUSTOMER.username))) {
    await createCustomer(knex, DEMO_CUSTOMER);
    customerCreated = true;
  }
  const app = await ensureDemoClient(knex, validateClient, dataDir, demoAppRegistration(appUrl));
  const twoStep = await ensureDemoTwoStepCustomer(knex, cipher, dataDir);
  return {
    customerCreated,
    ...(app.created ? { clientSecret: app.credentials.client_secret } : {}),
    credentialsFile: demoClientsFile(dataDir),
    app: app.credentials,
    twoStep,
  };
}
