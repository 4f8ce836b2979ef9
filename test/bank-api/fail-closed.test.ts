import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { callBankApi, registerBankApiClient, startTestBankApi } from '../support/bank-api.ts';
import { createTestCustomer, registerTestApp, startTestPassbook } from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

/** When Passbook cannot vouch for a token, the bank API refuses: 503, never open. */

async function fakePassbook(handler: http.RequestListener) {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/token/introspection`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function expectUnavailable(answer: { status: number; headers: Headers; body: Record<string, unknown> }) {
  expect(answer.status).toBe(503);
  expect(answer.body.error).toBe('temporarily_unavailable');
  expect(answer.headers.get('retry-after')).toBe('5');
  expect(answer.body).not.toHaveProperty('transactions');
}

test('a live token gets 503 once Passbook has stopped, and works again when Passbook is back', async () => {
  const passbook = await startTestPassbook();
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { tokens } = await completeFlow(passbook, app, customer, 'openid transactions:read');
  const bankApi = await startTestBankApi(passbook);
  try {
    expect((await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token })).status).toBe(
      200,
    );
    await passbook.close();
    expectUnavailable(await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token }));

    const port = new URL(passbook.issuer).port;
    const again = await startTestPassbook({ PORT: port, ISSUER: passbook.issuer });
    try {
      expect((await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token })).status).toBe(
        200,
      );
    } finally {
      await again.close();
    }
  } finally {
    await bankApi.close();
  }
});

describe('against a Passbook that misbehaves', () => {
  let passbook: Awaited<ReturnType<typeof startTestPassbook>>;

  beforeAll(async () => {
    passbook = await startTestPassbook();
  });

  afterAll(async () => {
    await passbook.close();
  });

  async function bankApiAgainst(introspectionUrl: string, env: Record<string, string> = {}) {
    return startTestBankApi(passbook, { INTROSPECTION_ENDPOINT: introspectionUrl, ...env });
  }

  test('an answer of 500 from introspection gets 503', async () => {
    const fake = await fakePassbook((_request, response) => {
      response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"server_error"}');
    });
    const bankApi = await bankApiAgainst(fake.url);
    try {
      expectUnavailable(await callBankApi(bankApi.url, '/transactions', { token: 'any-token' }));
    } finally {
      await bankApi.close();
      await fake.close();
    }
  });

  test('an introspection that hangs gets 503 after the timeout, not a hung request', async () => {
    const fake = await fakePassbook(() => {
      // Never answers.
    });
    const bankApi = await bankApiAgainst(fake.url, { INTROSPECTION_TIMEOUT_MS: '200' });
    try {
      const started = Date.now();
      expectUnavailable(await callBankApi(bankApi.url, '/transactions', { token: 'any-token' }));
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await bankApi.close();
      await fake.close();
    }
  });

  test('an answer that is not JSON, or for another issuer, gets 503', async () => {
    const notJson = await fakePassbook((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>');
    });
    const otherIssuer = await fakePassbook((_request, response) => {
      const answer = { active: true, iss: 'https://elsewhere.example', token_type: 'Bearer', sub: 'x' };
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
    for (const fake of [notJson, otherIssuer]) {
      const bankApi = await bankApiAgainst(fake.url);
      try {
        expectUnavailable(await callBankApi(bankApi.url, '/transactions', { token: 'any-token' }));
      } finally {
        await bankApi.close();
        await fake.close();
      }
    }
  });

  test('JSON that is not an object (null, a list) gets 503 like any other unclear answer', async () => {
    for (const body of ['null', '[]']) {
      const fake = await fakePassbook((_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json' }).end(body);
      });
      const bankApi = await bankApiAgainst(fake.url);
      try {
        expectUnavailable(await callBankApi(bankApi.url, '/transactions', { token: 'any-token' }));
      } finally {
        await bankApi.close();
        await fake.close();
      }
    }
  });

  test('wrong credentials for the bank API itself get 503 for the caller, not a pass', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const { tokens } = await completeFlow(passbook, app, customer, 'openid transactions:read');
    const resourceServer = await registerBankApiClient(passbook);
    const bankApi = await startTestBankApi(passbook, { CLIENT_SECRET: 'not-the-secret' }, resourceServer);
    try {
      expectUnavailable(await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token }));
    } finally {
      await bankApi.close();
    }
  });

  test('an app’s own credentials cannot stand in for a resource server’s: its token is not vouched for', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const other = await registerTestApp(passbook, { name: 'Other App' });
    const { tokens } = await completeFlow(passbook, app, customer, 'openid transactions:read');
    // A bank API misconfigured with an ordinary app's credentials learns nothing about other apps' tokens.
    const bankApi = await startTestBankApi(passbook, {}, other);
    try {
      const answer = await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token });
      expect(answer.status).toBe(401);
    } finally {
      await bankApi.close();
    }
  });
});
