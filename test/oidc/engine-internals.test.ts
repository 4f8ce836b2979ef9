import type { KoaContextWithOIDC, PromptDetail } from 'oidc-provider';
import { CustomerAgent } from '../support/customer-agent.ts';
import {
  TEST_COOKIE_KEYS,
  TEST_REDIRECT_URI,
  createTestCustomer,
  registerTestApp,
  testDatabaseUrl,
  useTestPassbook,
} from '../support/passbook.ts';
import {
  authorizationRequest,
  completeFlow,
  customerAllows,
  discoverAs,
} from '../support/third-party-app.ts';
import { once } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  beforeEngineAnswers,
  consentPromptDetails,
  engineRoute,
  isSpecialUseIP,
  logoutTokenRecipient,
  sendBackchannelLogout,
  replaceSigningKeys,
  restoreSessionGrantAfterwards,
  signInSession,
} from '../../src/oidc/engine-internals.ts';
import { loadConfig } from '../../src/config.ts';
import { createProvider } from '../../src/oidc/provider.ts';
import { createKnex } from '../../src/db/knex.ts';
import { decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from 'jose';

/**
 * One test per undocumented piece of oidc-provider that src/oidc/engine-internals.ts relies on,
 * against the real engine: when an upgrade changes one of them, the failure names it.
 */

const passbook = useTestPassbook();

describe('the client secret comparison, taught to compare digests', () => {
  test('accepts the secret, refuses a wrong one and refuses the stored digest itself', async () => {
    const app = await registerTestApp(passbook);
    const client = await passbook.provider.Client.find(app.client_id);
    expect(client).toBeDefined();
    const secret = String(app.client_secret);
    expect(await client?.compareClientSecret(secret)).toBe(true);
    expect(await client?.compareClientSecret(`${secret}x`)).toBe(false);
    expect(await client?.compareClientSecret(String(client.clientSecret))).toBe(false);
  });
});

describe('signing a session in by hand', () => {
  test('sets the customer, how they proved it, and a new id', () => {
    const session = new passbook.provider.Session();
    session.resetIdentifier();
    const before = session.jti;
    signInSession(session, 'customer-1', ['pwd', 'otp']);
    expect(session.accountId).toBe('customer-1');
    expect(session.amr).toEqual(['pwd', 'otp']);
    expect(session.jti).toBeTruthy();
    expect(session.jti).not.toBe(before);
  });

  test('the session cookie the account pages write is one the engine accepts: prompt=none signs the app in', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const form = await agent.open(`${passbook.issuer}/account/sign-in`);
    const account = await agent.submit(form, '/account/sign-in', {
      username: customer.username,
      password: customer.password,
    });
    expect(new URL(account.url).pathname).toBe('/account');

    // Consent first (a new app always asks), then a silent request rides on the same session.
    const config = await discoverAs(passbook, app);
    await completeFlow(passbook, app, customer, 'openid', agent);
    const silent = await agent.open(
      (await authorizationRequest(config, 'openid', { prompt: 'none' })).url.href,
    );
    expect(new URL(silent.url).searchParams.get('code')).toBeTruthy();
  });
});

describe('the consent prompt’s details', () => {
  function interactionWith(details: Record<string, unknown>): { prompt: PromptDetail } {
    return { prompt: { name: 'consent', reasons: [], details } };
  }

  test('are read as lists of scopes and claims, empty when absent', () => {
    expect(consentPromptDetails(interactionWith({ missingOIDCScope: ['openid', 'email'] }))).toEqual({
      missingOIDCScope: ['openid', 'email'],
      missingOIDCClaims: [],
    });
  });

  test('are refused loudly when the engine reports them in another shape', () => {
    expect(() => consentPromptDetails(interactionWith({ missingOIDCScope: 'openid email' }))).toThrow(
      /missingOIDCScope is not a list of strings/,
    );
  });

  test('name what the engine really reports for a new app', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const config = await discoverAs(passbook, app);
    const agent = new CustomerAgent([TEST_REDIRECT_URI]);
    const signIn = await agent.open((await authorizationRequest(config, 'openid email')).url.href);
    const consent = await agent.signIn(signIn, customer.username, customer.password);
    const uid = new URL(consent.url).pathname.split('/')[2] ?? '';
    const stored = await passbook
      .knex('oidc_models')
      .where({ kind: 'Interaction', id: uid })
      .first<{ payload: { prompt: PromptDetail } } | undefined>('payload');
    if (!stored) throw new Error('the interaction was not stored');
    const details = consentPromptDetails(stored.payload);
    expect(details.missingOIDCScope.sort()).toEqual(['email', 'openid']);
  });
});

describe('the session’s grant for an app, put back after an authorization', () => {
  test('the engine emits authorization.success after the code names its grant and before it saves the session', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const seen: { codeGrant?: string } = {};
    const marker = 'grant-the-session-held-before';
    const listener = (ctx: KoaContextWithOIDC) => {
      if (ctx.oidc.client?.clientId !== app.client_id) return;
      seen.codeGrant = ctx.oidc.entities.AuthorizationCode?.grantId;
      restoreSessionGrantAfterwards(ctx, marker);
    };
    // Registered before the provider's own listener, which then puts the marker back.
    passbook.provider.prependListener('authorization.success', listener);
    try {
      const request = await authorizationRequest(await discoverAs(passbook, app), 'openid');
      await customerAllows(new CustomerAgent([TEST_REDIRECT_URI]), request, customer);
    } finally {
      passbook.provider.off('authorization.success', listener);
    }
    expect(seen.codeGrant).toBeTruthy();
    const session = await passbook
      .knex('oidc_models')
      .where({ kind: 'Session', customer_id: customer.id })
      .first<{ payload: { authorizations: Record<string, { grantId?: string }> } } | undefined>('payload');
    expect(session?.payload.authorizations[app.client_id]?.grantId).toBe(marker);
  });
});

describe('back-channel logout through the engine', () => {
  test('the SSRF guard’s predicate is still there and still tells special-use addresses apart', () => {
    for (const address of ['127.0.0.1', '10.1.2.3', '192.168.0.1', '169.254.1.1', '::1']) {
      expect({ address, special: isSpecialUseIP(address) }).toEqual({ address, special: true });
    }
    expect(isSpecialUseIP('8.8.8.8')).toBe(false);
  });

  test('a registered app can still be sent its logout token', async () => {
    const received: string[] = [];
    const listener = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push(body);
        res.writeHead(200).end();
      });
    });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    try {
      const { port } = listener.address() as AddressInfo;
      const app = await registerTestApp(passbook, {
        backchannelLogoutUri: `http://127.0.0.1:${port}/logout`,
      });
      const recipient = await logoutTokenRecipient(passbook.provider, app.client_id);
      expect(recipient?.backchannelLogoutUri).toBe(`http://127.0.0.1:${port}/logout`);
      if (!recipient) throw new Error('the app was not found');
      await sendBackchannelLogout(recipient, 'customer-1', 'sid-1');
      expect(received).toHaveLength(1);
      expect(new URLSearchParams(received[0]).get('logout_token')).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    } finally {
      listener.close();
    }
  });
});

describe('swapping the signing keys of a running provider', () => {
  async function rs256Key(kid: string): Promise<JWK> {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  }

  test('the engine publishes the new set and signs with its first key; a verify-only key never signs', async () => {
    const [one, two] = await Promise.all([rs256Key('key-one'), rs256Key('key-two')]);
    // A provider of its own, with Passbook's policy: the shared test server's keys belong to its database.
    const provider = createProvider({
      config: loadConfig({ NODE_ENV: 'test', ISSUER: 'http://127.0.0.1:1' }),
      knex: passbook.knex,
      signingKeys: [one],
      cookieKeys: [TEST_COOKIE_KEYS],
      hasSecondFactor: () => Promise.resolve(false),
      dpopNonceSecret: randomBytes(32),
    });
    const handle = provider.callback();
    const server = http.createServer((request, response) => void handle(request, response));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const app = await registerTestApp(passbook);
      const client = await provider.Client.find(app.client_id);
      if (!client) throw new Error('no client');
      const signer = async () =>
        decodeProtectedHeader(
          await new provider.IdToken({ sub: 'customer-1' }, { client }).issue({ use: 'idtoken' }),
        ).kid;
      const published = async () =>
        ((await (await fetch(`http://127.0.0.1:${port}/jwks`)).json()) as { keys: JWK[] }).keys.map((key) => [
          key.kid,
          key.key_ops,
          key.d,
        ]);
      expect(await signer()).toBe('key-one');

      replaceSigningKeys(provider, [{ ...one, key_ops: ['verify'] }, two]);
      expect(await signer()).toBe('key-two');
      expect(await published()).toEqual([
        ['key-one', ['verify'], undefined],
        ['key-two', undefined, undefined],
      ]);

      // A set the engine would refuse at start-up is refused here too, and the old one stays.
      expect(() => replaceSigningKeys(provider, [one, { ...one }])).toThrow(/duplicate "kid"/);
      expect(await signer()).toBe('key-two');
    } finally {
      server.close();
    }
  });
});

describe('an unreachable database, in the engine’s own error form', () => {
  test('is 503 temporarily_unavailable with Retry-After, as JSON for apps and the error page at /auth', async () => {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    // Nothing listens on port 1: every query is refused, as by a stopped PostgreSQL.
    const unreachable = createKnex('postgres://passbook@127.0.0.1:1/passbook', 1);
    const provider = createProvider({
      config: loadConfig({ NODE_ENV: 'test', ISSUER: 'http://127.0.0.1:1' }),
      knex: unreachable,
      signingKeys: [{ ...(await exportJWK(privateKey)), kid: 'key', alg: 'RS256', use: 'sig' }],
      cookieKeys: [TEST_COOKIE_KEYS],
      hasSecondFactor: () => Promise.resolve(false),
      dpopNonceSecret: randomBytes(32),
    });
    const handle = provider.callback();
    const server = http.createServer((request, response) => void handle(request, response));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const introspection = await fetch(`http://127.0.0.1:${port}/token/introspection`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from('some-app:secret').toString('base64')}` },
        body: new URLSearchParams({ token: 'some-token' }),
      });
      expect(introspection.status).toBe(503);
      expect(introspection.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await introspection.json()).toMatchObject({ error: 'temporarily_unavailable' });

      const query = new URLSearchParams({
        client_id: 'some-app',
        redirect_uri: TEST_REDIRECT_URI,
        response_type: 'code',
        scope: 'openid',
      });
      const authorization = await fetch(`http://127.0.0.1:${port}/auth?${query.toString()}`, {
        redirect: 'manual',
        headers: { accept: 'text/html' },
      });
      expect(authorization.status).toBe(503);
      expect(authorization.headers.get('location')).toBeNull();
      expect(authorization.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await authorization.text()).toContain('try again in a few moments');
    } finally {
      server.close();
      await unreachable.destroy();
    }
  });
});

describe('a hook that runs after the engine has answered and before the answer is written', () => {
  test('sees the final status and body, errors included, after the session was saved, and may replace the answer', async () => {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const knex = createKnex(testDatabaseUrl(), 2);
    const provider = createProvider({
      config: loadConfig({ NODE_ENV: 'test', ISSUER: 'http://127.0.0.1:1' }),
      knex,
      signingKeys: [{ ...(await exportJWK(privateKey)), kid: 'key', alg: 'RS256', use: 'sig' }],
      cookieKeys: [TEST_COOKIE_KEYS],
      hasSecondFactor: () => Promise.resolve(false),
      dpopNonceSecret: randomBytes(32),
    });
    const seen: Record<string, unknown>[] = [];
    beforeEngineAnswers(provider, async (ctx, escaped) => {
      const cookies = ctx.response.get('set-cookie');
      const sessionId = /passbook_session=([^;]+)/.exec(String(cookies))?.[1];
      const sessionRow: unknown = sessionId
        ? await knex('oidc_models').where({ kind: 'Session', id: sessionId }).first('id')
        : undefined;
      seen.push({
        route: engineRoute(ctx),
        status: ctx.status,
        body: ctx.body,
        escaped,
        written: ctx.res.headersSent,
        sessionStored: sessionRow !== undefined,
      });
      if (engineRoute(ctx) === 'token') {
        ctx.status = 503;
        ctx.body = { error: 'replaced' };
      }
    });
    const handle = provider.callback();
    const server = http.createServer((request, response) => void handle(request, response));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const token = await fetch(`http://127.0.0.1:${port}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from('no-such-app:secret').toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'some-token' }),
      });
      expect(token.status).toBe(503);
      expect(await token.json()).toEqual({ error: 'replaced' });
      expect(seen[0]).toMatchObject({
        route: 'token',
        status: 401,
        body: { error: 'invalid_client' },
        escaped: false,
        written: false,
      });

      // The sign-out page stores its session (with the form's secret) before it answers.
      const signOut = await fetch(`http://127.0.0.1:${port}/session/end`, {
        headers: { accept: 'text/html' },
      });
      expect(signOut.status).toBe(200);
      expect(seen[1]).toMatchObject({
        route: 'end_session',
        status: 200,
        written: false,
        sessionStored: true,
      });
    } finally {
      server.close();
      await knex.destroy();
    }
  });
});

describe('the replay check, answered as a replay when a simultaneous copy got in first', () => {
  test('of simultaneous checks of one jti exactly one passes, and a later one fails', async () => {
    const { ReplayDetection } = passbook.provider;
    const jti = randomUUID();
    const exp = Math.floor(Date.now() / 1000) + 60;
    const answers = await Promise.all([1, 2, 3].map(() => ReplayDetection.unique('replay-test', jti, exp)));
    expect(answers.sort()).toEqual([false, false, true]);
    expect(await ReplayDetection.unique('replay-test', jti, exp)).toBe(false);
    expect(await ReplayDetection.unique('replay-test', randomUUID(), exp)).toBe(true);
  });
});
