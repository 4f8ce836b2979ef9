import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestPassbook,
} from './support/passbook.ts';
import { completeFlow } from './support/third-party-app.ts';

/**
 * Two Passbook processes on one database behind a round-robin proxy, as a bank runs them: every
 * request of a flow may land on either node, and what one node does (a revocation) binds the
 * other at once. (Throttling counts and key rotation across nodes have tests of their own:
 * test/sign-in/throttling.test.ts and test/oidc/key-rotation.test.ts.)
 */

let proxy: http.Server;
let nodes: TestPassbook[] = [];
let issuer = '';
const served: number[] = [];

/** Sends each request to the next node in turn, body and headers as they came. */
function roundRobin(): http.Server {
  let next = 0;
  return http.createServer((request, response) => {
    const index = next++ % nodes.length;
    served.push(index);
    const target = new URL(nodes[index]?.url ?? '');
    const forwarded = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: request.method,
        path: request.url,
        headers: request.headers,
      },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    forwarded.on('error', () => response.writeHead(502).end());
    request.pipe(forwarded);
  });
}

beforeAll(async () => {
  proxy = roundRobin();
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  issuer = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  nodes = await Promise.all([startTestPassbook({ ISSUER: issuer }), startTestPassbook({ ISSUER: issuer })]);
});

afterAll(async () => {
  proxy.closeAllConnections();
  await new Promise((resolve) => proxy.close(resolve));
  await Promise.all(nodes.map((node) => node.close()));
});

/** The nodes as the app sees them: one issuer, the proxy's. */
function throughProxy(): TestPassbook {
  const [first] = nodes;
  if (!first) throw new Error('no node');
  return { ...first, issuer };
}

test('a whole flow whose requests alternate between the nodes completes', async () => {
  const passbook = throughProxy();
  const before = served.length;
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { tokens, config } = await completeFlow(passbook, app, customer, 'openid offline_access');
  expect(tokens.access_token).toBeTruthy();
  const user = await oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck);
  expect(user.sub).toBe(customer.id);
  const seen = new Set(served.slice(before));
  expect(seen).toEqual(new Set([0, 1]));
});

test('a token revoked through one node is refused by the other at once', async () => {
  const passbook = throughProxy();
  const customer = await createTestCustomer(passbook.knex);
  const app = await registerTestApp(passbook);
  const { tokens, config } = await completeFlow(passbook, app, customer, 'openid offline_access');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    // Two introspections in a row land on both nodes: both know the token.
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(true);
  }
  await oidc.tokenRevocation(config, tokens.access_token);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
  }
});
