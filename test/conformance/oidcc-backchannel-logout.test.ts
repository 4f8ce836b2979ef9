/**
 * @jest-environment ./test/support/node-fetch-environment.ts
 */
import { expect, jest } from '@jest/globals';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import * as oidc from 'openid-client';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import { deliveryFailures } from '../../src/oidc/backchannel-logout.ts';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import {
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  type TestCustomer,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

/**
 * Checklist J34: back-channel logout, for RP-initiated logout and for signing out on the bank's
 * pages. The file runs with oidc-provider's SSRF guard active, as in production (see the
 * environment above), so a receiver on 127.0.0.1 hears of a logout only because the policy in
 * src/oidc/backchannel-logout.ts allows loopback here, and not by the guard's absence.
 */

let passbook: TestPassbook;
let jwks: JWTVerifyGetKey;
/** What reached console.warn, where oidc-provider announces a missing SSRF guard. */
const consoleWarnings: string[] = [];

/** Both servers' log lines, parsed. */
const logged: Record<string, unknown>[] = [];

function capturedLogger(): Logger {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        logged.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return createLogger({ logLevel: 'warn' }, sink);
}

beforeAll(async () => {
  jest.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => {
    consoleWarnings.push(args.map(String).join(' '));
  });
  passbook = await startTestPassbook({}, capturedLogger());
  jwks = createRemoteJWKSet(new URL(`${passbook.issuer}/jwks`));
});

afterAll(async () => {
  await passbook.close();
  jest.restoreAllMocks();
});

afterEach(() => {
  expect(consoleWarnings.filter((warning) => warning.includes('SSRF'))).toEqual([]);
});

interface FailureLine {
  level: unknown;
  clientId: unknown;
  failure: unknown;
  reason: unknown;
  signOut: unknown;
}

function deliveryFailureLines(app: RegisteredClient): FailureLine[] {
  return logged
    .filter((line) => line.msg === 'back-channel logout not delivered' && line.clientId === app.client_id)
    .map(({ level, clientId, failure, reason, signOut }) => ({ level, clientId, failure, reason, signOut }));
}

const APP_ORIGIN = 'https://app.example';
const POST_LOGOUT_URI = `${APP_ORIGIN}/signed-out`;
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

interface Delivery {
  method: string;
  contentType: string | undefined;
  form: URLSearchParams;
}

/** A tiny stand-in for an app's back-channel logout endpoint on 127.0.0.1. */
interface Receiver {
  url: string;
  deliveries: Delivery[];
  close(): Promise<void>;
}

const receivers: Receiver[] = [];

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});

async function startReceiver(answerStatus = 200): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      deliveries.push({
        method: request.method ?? '',
        contentType: request.headers['content-type'],
        form: new URLSearchParams(body),
      });
      response.writeHead(answerStatus, { 'cache-control': 'no-store' });
      response.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/backchannel-logout`,
    deliveries,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  receivers.push(receiver);
  return receiver;
}

function appWith(receiver: Receiver | undefined, name = 'Budget Buddy') {
  return registerTestApp(passbook, {
    name,
    postLogoutRedirectUris: [POST_LOGOUT_URI],
    ...(receiver ? { backchannelLogoutUri: receiver.url } : {}),
  });
}

async function sessionRows(customer: TestCustomer): Promise<number> {
  const rows = await passbook.knex('oidc_models').where({ kind: 'Session', customer_id: customer.id });
  return rows.length;
}

function idTokenOf(tokens: { id_token?: string }): string {
  if (!tokens.id_token) throw new Error('no ID token was issued');
  return tokens.id_token;
}

/** The app's RP-initiated logout, confirmed by the customer; returns where the browser ended. */
async function rpInitiatedLogout(agent: CustomerAgent, config: oidc.Configuration, idToken: string) {
  const state = oidc.randomState();
  const confirmation = await agent.open(
    oidc.buildEndSessionUrl(config, {
      id_token_hint: idToken,
      post_logout_redirect_uri: POST_LOGOUT_URI,
      state,
    }).href,
  );
  if (!confirmation.document.querySelector('form[id="op.logoutForm"]')) {
    throw new Error(`no logout confirmation at ${confirmation.url}:\n${confirmation.body}`);
  }
  const landing = await agent.submit(confirmation, '/session/end/confirm', { logout: 'yes' });
  return { state, landing };
}

/** The customer opens the bank's account pages in the same browser and presses "Sign out". */
async function signOutOnAccountPages(agent: CustomerAgent, server: TestPassbook = passbook): Promise<Page> {
  const account = await agent.open(`${server.issuer}/account`);
  if (account.url !== `${server.issuer}/account`) {
    throw new Error(`the account pages did not open with the app's session: ${account.url}`);
  }
  return agent.submit(account, '/account/sign-out');
}

/** Checks a logout token as an app must (signature, issuer, audience, typ) and returns it. */
async function verifyLogoutToken(token: string, app: RegisteredClient) {
  return jwtVerify(token, jwks, {
    issuer: passbook.issuer,
    audience: app.client_id,
    typ: 'logout+jwt',
  });
}

function expectLogoutTokenClaims(payload: JWTPayload, app: RegisteredClient, idTokenSid: unknown): void {
  expect(payload.iss).toBe(passbook.issuer);
  expect(payload.aud).toBe(app.client_id);
  expect(typeof payload.iat).toBe('number');
  expect(Math.abs((payload.iat ?? 0) - Date.now() / 1000)).toBeLessThan(60);
  expect(payload.jti).toEqual(expect.any(String));
  expect(String(payload.jti).length).toBeGreaterThanOrEqual(16);
  expect(typeof idTokenSid).toBe('string');
  expect(payload.sid).toBe(idTokenSid);
  expect(payload.events).toEqual({ [BACKCHANNEL_EVENT]: {} });
  expect(payload).not.toHaveProperty('nonce');
}

function expectOneFormPost(receiver: Receiver): string {
  expect(receiver.deliveries).toHaveLength(1);
  const [delivery] = receiver.deliveries;
  expect(delivery?.method).toBe('POST');
  expect(delivery?.contentType).toMatch(/^application\/x-www-form-urlencoded/);
  const token = delivery?.form.get('logout_token');
  expect(token).toEqual(expect.any(String));
  return token ?? '';
}

describe('J34: the app hears of the logout on its back channel', () => {
  test('RP-initiated logout POSTs a logout token signed by the bank, for the session the ID token named', async () => {
    const receiver = await startReceiver();
    const customer = await createTestCustomer(passbook.knex, 'Bea Backchannel');
    const app = await appWith(receiver);
    const agent = new CustomerAgent([APP_ORIGIN]);
    const { config, tokens } = await completeFlow(passbook, app, customer, 'openid profile', agent);
    const idToken = idTokenOf(tokens);
    expect(receiver.deliveries).toHaveLength(0);

    const { state, landing } = await rpInitiatedLogout(agent, config, idToken);

    expect(landing.url).toBe(`${POST_LOGOUT_URI}?state=${state}`);
    const logoutToken = expectOneFormPost(receiver);
    const { payload, protectedHeader } = await verifyLogoutToken(logoutToken, app);
    expect(protectedHeader.typ).toBe('logout+jwt');
    expect(protectedHeader.alg).toBe('RS256');
    expectLogoutTokenClaims(payload, app, decodeJwt(idToken).sid);
    expect(payload.sub).toBe(customer.id);
  });

  test('signing out on the bank’s account pages POSTs the same kind of logout token', async () => {
    const receiver = await startReceiver();
    const customer = await createTestCustomer(passbook.knex);
    const app = await appWith(receiver);
    const agent = new CustomerAgent([APP_ORIGIN]);
    const { tokens } = await completeFlow(passbook, app, customer, 'openid', agent);
    expect(await sessionRows(customer)).toBe(1);
    expect(receiver.deliveries).toHaveLength(0);

    const page = await signOutOnAccountPages(agent);

    expect(page.status).toBe(200);
    expect(page.body).toMatch(/signed out/i);
    expect(await sessionRows(customer)).toBe(0);
    const logoutToken = expectOneFormPost(receiver);
    const { payload, protectedHeader } = await verifyLogoutToken(logoutToken, app);
    expect(protectedHeader.typ).toBe('logout+jwt');
    expectLogoutTokenClaims(payload, app, decodeJwt(idTokenOf(tokens)).sid);
    expect(payload.sub).toBe(customer.id);
  });

  test('two logouts give two different jti values', async () => {
    const receiver = await startReceiver();
    const app = await appWith(receiver);
    const jtis: unknown[] = [];
    for (const round of [1, 2]) {
      const customer = await createTestCustomer(passbook.knex, `Round ${round}`);
      const agent = new CustomerAgent([APP_ORIGIN]);
      const { config, tokens } = await completeFlow(passbook, app, customer, 'openid', agent);
      await rpInitiatedLogout(agent, config, idTokenOf(tokens));
      expect(receiver.deliveries).toHaveLength(round);
      const token = receiver.deliveries[round - 1]?.form.get('logout_token') ?? '';
      jtis.push((await verifyLogoutToken(token, app)).payload.jti);
    }
    expect(jtis[0]).not.toBe(jtis[1]);
  });

  test('of two apps in one session, only the one with a back-channel URI is called, and logout succeeds', async () => {
    const receiver = await startReceiver();
    const customer = await createTestCustomer(passbook.knex);
    const listening = await appWith(receiver, 'Listening App');
    const silent = await appWith(undefined, 'Silent App');
    expect(silent.metadata.backchannel_logout_uri).toBeUndefined();
    const agent = new CustomerAgent([APP_ORIGIN]);
    const { tokens: listeningTokens } = await completeFlow(passbook, listening, customer, 'openid', agent);
    const { config, tokens } = await completeFlow(passbook, silent, customer, 'openid', agent);
    expect(await sessionRows(customer)).toBe(1);
    // The app with a back channel learns its session id from the ID token.
    expect(decodeJwt(idTokenOf(listeningTokens)).sid).toEqual(expect.any(String));

    const { state, landing } = await rpInitiatedLogout(agent, config, idTokenOf(tokens));

    expect(landing.url).toBe(`${POST_LOGOUT_URI}?state=${state}`);
    expect(await sessionRows(customer)).toBe(0);
    const logoutToken = expectOneFormPost(receiver);
    const { payload } = await verifyLogoutToken(logoutToken, listening);
    expect(payload.aud).toBe(listening.client_id);
    expect(payload.sid).toBe(decodeJwt(idTokenOf(listeningTokens)).sid);
  });

  test('an app that never signed this customer in hears nothing of their logout', async () => {
    const receiver = await startReceiver();
    const customer = await createTestCustomer(passbook.knex);
    const bystander = await appWith(receiver, 'Bystander App');
    const used = await appWith(undefined, 'Used App');
    const agent = new CustomerAgent([APP_ORIGIN]);
    const { config, tokens } = await completeFlow(passbook, used, customer, 'openid', agent);

    const { landing } = await rpInitiatedLogout(agent, config, idTokenOf(tokens));

    expect(landing.url.startsWith(POST_LOGOUT_URI)).toBe(true);
    expect(await sessionRows(customer)).toBe(0);
    expect(receiver.deliveries).toHaveLength(0);

    // The same receiver does hear a logout of a session that used its app.
    const other = await createTestCustomer(passbook.knex);
    const otherAgent = new CustomerAgent([APP_ORIGIN]);
    const flow = await completeFlow(passbook, bystander, other, 'openid', otherAgent);
    await rpInitiatedLogout(otherAgent, flow.config, idTokenOf(flow.tokens));
    expect(receiver.deliveries).toHaveLength(1);
  });

  test('a receiver that answers 500 does not stop the RP-initiated logout, and the failure is logged and counted', async () => {
    const receiver = await startReceiver(500);
    const customer = await createTestCustomer(passbook.knex);
    const app = await appWith(receiver);
    const agent = new CustomerAgent([APP_ORIGIN]);
    const { config, tokens } = await completeFlow(passbook, app, customer, 'openid', agent);
    const rejectedBefore = deliveryFailures.count('rejected');

    const { state, landing } = await rpInitiatedLogout(agent, config, idTokenOf(tokens));

    expect(receiver.deliveries).toHaveLength(1);
    expect(landing.url).toBe(`${POST_LOGOUT_URI}?state=${state}`);
    expect(await sessionRows(customer)).toBe(0);
    expect(deliveryFailureLines(app)).toEqual([
      {
        level: 40,
        clientId: app.client_id,
        failure: 'rejected',
        reason: 'the app answered HTTP 500',
        signOut: 'end_session',
      },
    ]);
    expect(deliveryFailures.count('rejected')).toBe(rejectedBefore + 1);
    const token = receiver.deliveries[0]?.form.get('logout_token') ?? '';
    expect(token).not.toBe('');
    expect(JSON.stringify(logged)).not.toContain(token);
  });

  test('a receiver that answers 500 does not stop signing out on the account pages, and the failure is logged and counted', async () => {
    const receiver = await startReceiver(500);
    const customer = await createTestCustomer(passbook.knex);
    const app = await appWith(receiver);
    const agent = new CustomerAgent([APP_ORIGIN]);
    await completeFlow(passbook, app, customer, 'openid', agent);
    const rejectedBefore = deliveryFailures.count('rejected');

    const page = await signOutOnAccountPages(agent);

    expect(receiver.deliveries).toHaveLength(1);
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/signed out/i);
    expect(await sessionRows(customer)).toBe(0);
    const again = await agent.open(`${passbook.issuer}/account`);
    expect(again.url).toBe(`${passbook.issuer}/account/sign-in`);
    expect(deliveryFailureLines(app)).toEqual([
      {
        level: 40,
        clientId: app.client_id,
        failure: 'rejected',
        reason: 'the app answered HTTP 500',
        signOut: 'account_pages',
      },
    ]);
    expect(deliveryFailures.count('rejected')).toBe(rejectedBefore + 1);
  });

  test('an app that is not listening is logged as unreachable, and the sign-out completes', async () => {
    const receiver = await startReceiver();
    await receiver.close();
    const customer = await createTestCustomer(passbook.knex);
    const app = await appWith(receiver);
    const agent = new CustomerAgent([APP_ORIGIN]);
    const { config, tokens } = await completeFlow(passbook, app, customer, 'openid', agent);
    const unreachableBefore = deliveryFailures.count('unreachable');

    const { state, landing } = await rpInitiatedLogout(agent, config, idTokenOf(tokens));

    expect(landing.url).toBe(`${POST_LOGOUT_URI}?state=${state}`);
    expect(await sessionRows(customer)).toBe(0);
    expect(deliveryFailureLines(app)).toEqual([
      expect.objectContaining({ failure: 'unreachable', reason: expect.stringContaining('ECONNREFUSED') }),
    ]);
    expect(deliveryFailures.count('unreachable')).toBe(unreachableBefore + 1);
  });
});

describe('the SSRF guard stays on for every host that is not on the allow-list', () => {
  // The same database, with a policy that names only some other internal host: the apps below
  // were registered while loopback was allowed, and loopback has since been taken off the list.
  let narrow: TestPassbook;

  beforeAll(async () => {
    narrow = await startTestPassbook(
      { BACKCHANNEL_LOGOUT_ALLOWED_HOSTS: 'apps.internal.example' },
      capturedLogger(),
    );
  });

  afterAll(async () => {
    await narrow.close();
  });

  const refusedByTheGuard = (signOut: string) => ({
    level: 40,
    clientId: expect.any(String),
    failure: 'refused',
    reason: 'SSRF guard: hostname resolves to a special-use IP address',
    signOut,
  });

  test('RP-initiated logout: the loopback app gets nothing, the refusal is logged and counted, the customer is signed out', async () => {
    const receiver = await startReceiver();
    const customer = await createTestCustomer(narrow.knex);
    const app = await appWith(receiver);
    const agent = new CustomerAgent([APP_ORIGIN]);
    const { config, tokens } = await completeFlow(narrow, app, customer, 'openid', agent);
    const refusedBefore = deliveryFailures.count('refused');

    const { state, landing } = await rpInitiatedLogout(agent, config, idTokenOf(tokens));

    expect(receiver.deliveries).toHaveLength(0);
    expect(landing.url).toBe(`${POST_LOGOUT_URI}?state=${state}`);
    expect(await sessionRows(customer)).toBe(0);
    expect(deliveryFailureLines(app)).toEqual([refusedByTheGuard('end_session')]);
    expect(deliveryFailures.count('refused')).toBe(refusedBefore + 1);
  });

  test('account pages: the loopback app gets nothing, the refusal is logged and counted, the customer is signed out', async () => {
    const receiver = await startReceiver();
    const customer = await createTestCustomer(narrow.knex);
    const app = await appWith(receiver);
    const agent = new CustomerAgent([APP_ORIGIN]);
    await completeFlow(narrow, app, customer, 'openid', agent);
    const refusedBefore = deliveryFailures.count('refused');

    const page = await signOutOnAccountPages(agent, narrow);

    expect(receiver.deliveries).toHaveLength(0);
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/signed out/i);
    expect(await sessionRows(customer)).toBe(0);
    expect(deliveryFailureLines(app)).toEqual([refusedByTheGuard('account_pages')]);
    expect(deliveryFailures.count('refused')).toBe(refusedBefore + 1);
  });
});
