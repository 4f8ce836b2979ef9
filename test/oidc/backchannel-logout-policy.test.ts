import { jest } from '@jest/globals';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { InvalidClientError } from '../../src/clients/clients.ts';
import { createLogger } from '../../src/log.ts';
import {
  backchannelLogoutPolicy,
  deliveryFailures,
  undeliverableReason,
} from '../../src/oidc/backchannel-logout.ts';
import {
  TEST_COOKIE_KEYS,
  TEST_DATA_ENCRYPTION_KEY,
  createTestCustomer,
  registerTestApp,
  startTestPassbook,
  testDatabaseUrl,
  type TestPassbook,
} from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

/**
 * The back-channel logout delivery policy: BACKCHANNEL_LOGOUT_ALLOWED_HOSTS, what registration
 * refuses and why, and that delivery fails closed where oidc-provider's SSRF guard is missing.
 * Unlike test/conformance/oidcc-backchannel-logout.test.ts, this file runs in jest's plain node
 * environment, where the guard is missing.
 */

const VARIABLE = 'BACKCHANNEL_LOGOUT_ALLOWED_HOSTS';

function configWith(env: Record<string, string>) {
  return loadConfig({ NODE_ENV: 'test', DATABASE_URL: testDatabaseUrl(), ...env });
}

describe(VARIABLE, () => {
  test('allows loopback by default outside production, nothing in production', () => {
    expect(configWith({}).backchannelLogoutAllowedHosts).toEqual(['localhost', '127.0.0.1', '::1']);
    expect(configWith({ NODE_ENV: 'development' }).backchannelLogoutAllowedHosts).toEqual([
      'localhost',
      '127.0.0.1',
      '::1',
    ]);
    expect(
      configWith({
        NODE_ENV: 'production',
        COOKIE_KEYS: TEST_COOKIE_KEYS,
        DATA_ENCRYPTION_KEY: TEST_DATA_ENCRYPTION_KEY,
      }).backchannelLogoutAllowedHosts,
    ).toEqual([]);
  });

  test('takes exact host names and addresses, in the form URLs spell them', () => {
    expect(
      configWith({ [VARIABLE]: ' Apps.Internal.Example , [FD00::0005],10.0.0.7,' })
        .backchannelLogoutAllowedHosts,
    ).toEqual(['apps.internal.example', 'fd00::5', '10.0.0.7']);
  });

  test.each(['https://apps.internal.example', '*.internal.example', '10.0.0.0/8', 'apps.internal:8443'])(
    'refuses %j with one line naming the variable',
    (entry) => {
      expect(() => configWith({ [VARIABLE]: entry })).toThrow(ConfigError);
      expect(() => configWith({ [VARIABLE]: entry })).toThrow(
        new RegExp(`^${VARIABLE} must be a comma-separated list of host names or IP addresses`),
      );
    },
  );
});

describe('which URIs the policy could never deliver to', () => {
  const production = backchannelLogoutPolicy({
    env: 'production',
    backchannelLogoutAllowedHosts: ['10.20.0.15', 'accounts.internal.example'],
  });
  const development = backchannelLogoutPolicy({
    env: 'development',
    backchannelLogoutAllowedHosts: ['localhost', '127.0.0.1', '::1'],
  });

  test.each([
    ['https://10.20.0.15/logout', production],
    ['https://accounts.internal.example/logout', production],
    ['https://8.8.8.8/logout', production],
    ['http://127.0.0.1:4000/logout', development],
    ['http://[::1]:4000/logout', development],
    ['http://localhost:4000/logout', development],
  ])('delivers to %s', async (uri, policy) => {
    await expect(undeliverableReason(uri, policy)).resolves.toBeUndefined();
  });

  test.each([
    ['http://10.20.0.15/logout', production, 'it must use https'],
    ['http://127.0.0.1:4000/logout', production, 'it must use https'],
    [
      'http://app.example/logout',
      development,
      'it must use https (http only to a loopback host, outside production)',
    ],
    [
      'https://10.20.0.16/logout',
      production,
      '10.20.0.16 is a loopback, private or other special-use address, and the host is not in BACKCHANNEL_LOGOUT_ALLOWED_HOSTS',
    ],
    [
      'https://[fd00::5]/logout',
      production,
      'fd00::5 is a loopback, private or other special-use address, and the host is not in BACKCHANNEL_LOGOUT_ALLOWED_HOSTS',
    ],
    [
      'https://169.254.169.254/latest/meta-data',
      development,
      '169.254.169.254 is a loopback, private or other special-use address, and the host is not in BACKCHANNEL_LOGOUT_ALLOWED_HOSTS',
    ],
  ])('refuses %s', async (uri, policy, reason) => {
    await expect(undeliverableReason(uri, policy)).resolves.toBe(reason);
  });

  test('resolves a host name, best effort, and refuses one that points at a special-use address', async () => {
    // localhost resolves from the hosts file, with no network needed.
    await expect(undeliverableReason('https://localhost/logout', production)).resolves.toMatch(
      /^localhost resolves to (127\.0\.0\.1|::1), a loopback, private or other special-use address/,
    );
  });

  test('accepts a host name that does not resolve now: the guard decides at delivery', async () => {
    await expect(
      undeliverableReason('https://not-yet-deployed.invalid/logout', production),
    ).resolves.toBeUndefined();
  });
});

/** A stand-in for an app's back-channel logout endpoint on 127.0.0.1; counts what reached it. */
async function startReceiver() {
  let received = 0;
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      received += 1;
      response.writeHead(200).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/backchannel-logout`,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('registration and delivery on a running Passbook', () => {
  const logged: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        logged.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  let loopbackAllowed: TestPassbook;
  let narrow: TestPassbook;
  const consoleWarnings: string[] = [];

  beforeAll(async () => {
    jest.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => {
      consoleWarnings.push(args.map(String).join(' '));
    });
    const log = createLogger({ logLevel: 'warn' }, sink);
    loopbackAllowed = await startTestPassbook({}, log);
    narrow = await startTestPassbook({ [VARIABLE]: 'apps.internal.example,10.20.0.15' }, log);
  });

  afterAll(async () => {
    await Promise.all([loopbackAllowed.close(), narrow.close()]);
    jest.restoreAllMocks();
  });

  async function clientsNamed(name: string): Promise<number> {
    const rows = await narrow.knex('clients').whereRaw("metadata->>'client_name' = ?", [name]);
    return rows.length;
  }

  test('createClient refuses an undeliverable URI with the reason, and stores nothing', async () => {
    const name = `Undeliverable ${Date.now()}`;
    const registration = registerTestApp(narrow, {
      name,
      backchannelLogoutUri: 'https://10.9.8.7/backchannel-logout',
    });
    await expect(registration).rejects.toThrow(InvalidClientError);
    await expect(registration).rejects.toThrow(
      'backchannel_logout_uri https://10.9.8.7/backchannel-logout could never receive logout tokens: 10.9.8.7 is a loopback, private or other special-use address, and the host is not in BACKCHANNEL_LOGOUT_ALLOWED_HOSTS',
    );
    expect(await clientsNamed(name)).toBe(0);
  });

  test('createClient accepts an allow-listed internal host and a public one', async () => {
    const internal = await registerTestApp(narrow, { backchannelLogoutUri: 'https://10.20.0.15/logout' });
    expect(internal.metadata.backchannel_logout_uri).toBe('https://10.20.0.15/logout');
    const external = await registerTestApp(narrow, { backchannelLogoutUri: 'https://8.8.8.8/logout' });
    expect(external.metadata.backchannel_logout_uri).toBe('https://8.8.8.8/logout');
  });

  test('an allow-listed loopback app gets its logout token without depending on the guard', async () => {
    const receiver = await startReceiver();
    try {
      const app = await registerTestApp(loopbackAllowed, { backchannelLogoutUri: receiver.url });
      const customer = await createTestCustomer(loopbackAllowed.knex);
      const { agent } = await completeFlow(loopbackAllowed, app, customer, 'openid');
      const account = await agent.open(`${loopbackAllowed.issuer}/account`);
      await agent.submit(account, '/account/sign-out');
      expect(receiver.received()).toBe(1);
    } finally {
      await receiver.close();
    }
  });

  test('where the guard is missing, any other host is refused rather than called unguarded', async () => {
    const receiver = await startReceiver();
    try {
      // Registered while loopback was allowed; the narrow policy no longer lists it.
      const app = await registerTestApp(loopbackAllowed, { backchannelLogoutUri: receiver.url });
      const customer = await createTestCustomer(narrow.knex);
      const { agent } = await completeFlow(narrow, app, customer, 'openid');
      const refusedBefore = deliveryFailures.count('refused');

      const account = await agent.open(`${narrow.issuer}/account`);
      const page = await agent.submit(account, '/account/sign-out');

      expect(page.body).toMatch(/signed out/i);
      // The premise: oidc-provider could not build its guard in this environment.
      expect(consoleWarnings).toContainEqual(expect.stringContaining('failed to setup SSRF protection'));
      expect(receiver.received()).toBe(0);
      expect(deliveryFailures.count('refused')).toBe(refusedBefore + 1);
      const origin = new URL(receiver.url).origin;
      expect(logged.filter((line) => line.clientId === app.client_id)).toEqual([
        expect.objectContaining({
          level: 40,
          msg: 'back-channel logout not delivered',
          failure: 'refused',
          reason: `${origin} refused: oidc-provider's SSRF guard is not active in this runtime`,
          signOut: 'account_pages',
        }),
      ]);
    } finally {
      await receiver.close();
    }
  });
});
