import Keygrip from 'keygrip';
import { cookieSignatures } from '../../src/http/cookie-signatures.ts';
import { CustomerAgent } from '../support/customer-agent.ts';
import { createTestCustomer, startTestPassbook, type TestPassbook } from '../support/passbook.ts';

/**
 * The `.sig` cookies beside the bank's cookies: byte for byte what earlier releases signed (the
 * cookies library's default signer), every configured key accepted, and nothing else.
 */

const KEYS = ['k'.repeat(32), 'o'.repeat(32)];
const DATA = 'passbook_session=UzPh6S1Iu3d2ynS1yjzbLZqkYWFk6gdyc1V2vR4vD7V';

describe('cookie signatures', () => {
  const signatures = cookieSignatures(KEYS);

  test('are those of the default signer, so that cookies signed before stay valid', () => {
    const legacy = new Keygrip(KEYS);
    expect(signatures.sign(DATA)).toBe(legacy.sign(DATA));
    expect(signatures.index(DATA, new Keygrip([KEYS[1] ?? '']).sign(DATA))).toBe(1);
    expect(legacy.verify(DATA, signatures.sign(DATA))).toBe(true);
  });

  test('verify under any configured key, sign under the first', () => {
    const old = cookieSignatures([KEYS[1] ?? '']).sign(DATA);
    expect(signatures.index(DATA, signatures.sign(DATA))).toBe(0);
    expect(signatures.index(DATA, old)).toBe(1);
    expect(cookieSignatures(['x'.repeat(32)]).verify(DATA, old)).toBe(false);
  });

  test.each([
    ['another value', (digest: string) => digest, `${DATA}x`],
    [
      'a changed character',
      (digest: string) => `${digest.startsWith('A') ? 'B' : 'A'}${digest.slice(1)}`,
      DATA,
    ],
    ['a truncated digest', (digest: string) => digest.slice(0, -2), DATA],
    ['a longer digest', (digest: string) => `${digest}AAAA`, DATA],
    ['padding', (digest: string) => `${digest}=`, DATA],
    [
      'stray characters decoding would skip',
      (digest: string) => `${digest.slice(0, 10)}.${digest.slice(10)}`,
      DATA,
    ],
    ['nothing', () => '', DATA],
  ])('refuse %s', (_, alter, data) => {
    expect(signatures.index(data, alter(signatures.sign(DATA)))).toBe(-1);
    expect(signatures.verify(data, alter(signatures.sign(DATA)))).toBe(false);
  });

  test('need a key', () => {
    expect(() => cookieSignatures([])).toThrow('at least one key');
  });
});

describe('a session cookie with a forged signature', () => {
  let passbook: TestPassbook;

  beforeAll(async () => {
    passbook = await startTestPassbook();
  });

  afterAll(async () => {
    await passbook.close();
  });

  test('signs nobody in, though the session it names is live', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = new CustomerAgent();
    const account = `${passbook.issuer}/account`;
    const signIn = await agent.open(account);
    const signedIn = await agent.submit(signIn, '/account/sign-in', {
      username: customer.username,
      password: customer.password,
    });
    expect(signedIn.url).toBe(account);
    expect((await agent.open(account)).url).toBe(account);

    const cookies = await agent.jar.getCookies(account);
    const signature = cookies.find((cookie) => cookie.key === 'passbook_session.sig');
    expect(signature).toBeDefined();
    const forged = `${signature?.value.startsWith('A') ? 'B' : 'A'}${signature?.value.slice(1) ?? ''}`;
    await agent.jar.setCookie(`passbook_session.sig=${forged}; Path=/`, account);

    expect((await agent.open(account)).url).toBe(`${account}/sign-in`);
  });
});

describe('a cookie key rotated in', () => {
  const oldKey = `old-cookie-key-${'o'.repeat(32)}`;
  const newKey = `new-cookie-key-${'n'.repeat(32)}`;
  const nodes: TestPassbook[] = [];
  const node = async (keys: string[]) => {
    const started = await startTestPassbook({ COOKIE_KEYS: keys.join(',') });
    nodes.push(started);
    return started;
  };

  afterAll(async () => {
    await Promise.all(nodes.map((started) => started.close()));
  });

  const signedInAt = async (passbook: TestPassbook): Promise<CustomerAgent> => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = new CustomerAgent();
    const signIn = await agent.open(`${passbook.issuer}/account`);
    await agent.submit(signIn, '/account/sign-in', {
      username: customer.username,
      password: customer.password,
    });
    return agent;
  };
  const landsOn = async (agent: CustomerAgent, passbook: TestPassbook) =>
    (await agent.open(`${passbook.issuer}/account`)).url.slice(passbook.issuer.length);

  // Cookies are the host's, not the port's: every node here sees the ones the first node signed.
  test("keeps the old key's cookies valid on another node, re-signed under the new key", async () => {
    const before = await node([oldKey]);
    const rotated = await node([newKey, oldKey]);
    const dropped = await node([newKey]);
    const agent = await signedInAt(before);
    expect(await landsOn(agent, rotated)).toBe('/account');
    expect(await landsOn(agent, rotated)).toBe('/account');
    expect(await landsOn(agent, dropped)).toBe('/account');
  });

  test('signs nobody in where the key that signed the cookie is gone', async () => {
    const before = await node([oldKey]);
    const dropped = await node([newKey]);
    const agent = await signedInAt(before);
    expect(await landsOn(agent, dropped)).toBe('/account/sign-in');
  });
});
