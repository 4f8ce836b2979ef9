import { expect } from '@jest/globals';
import { deleteClient } from '../../src/clients/clients.ts';
import {
  basicAuthorization,
  createTestCustomer,
  registerTestApp,
  useTestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

const passbook = useTestPassbook();

async function introspect(app: { client_id: string; client_secret?: string }, token: string) {
  const response = await fetch(`${passbook.issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basicAuthorization(app),
    },
    body: new URLSearchParams({ token }),
  });
  return { status: response.status, body: (await response.json()) as { error?: string } };
}

test('an app deleted with the CLI stops working within seconds, tokens included', async () => {
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, customer);
  expect((await introspect(app, tokens.access_token)).status).toBe(200);

  expect(await deleteClient(passbook.knex, app.client_id)).toBe(true);

  // The provider caches clients for five seconds; allow twice that before calling it broken.
  const deadline = Date.now() + 10_000;
  let outcome = await introspect(app, tokens.access_token);
  while (outcome.status === 200 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    outcome = await introspect(app, tokens.access_token);
  }
  expect(outcome).toEqual({ status: 401, body: expect.objectContaining({ error: 'invalid_client' }) });

  const userinfo = await fetch(`${passbook.issuer}/me`, {
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  expect(userinfo.status).toBe(401);
});
