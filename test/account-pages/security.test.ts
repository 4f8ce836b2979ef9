import { Secret, TOTP } from 'otpauth';
import { recordEvent } from '../../src/audit/events.ts';
import { verifyCredentials } from '../../src/customers/customers.ts';
import { secondFactors } from '../../src/customers/second-factors.ts';
import { CustomerAgent, type Page } from '../support/customer-agent.ts';
import { createTestCustomer, useTestPassbook, type TestCustomer } from '../support/passbook.ts';

/** The Security page, through the real forms: password, authenticator app, recovery codes. */

const passbook = useTestPassbook();
const FIREFOX = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';

function url(path: string): string {
  return `${passbook.issuer}${path}`;
}

async function signedIn(customer: TestCustomer, userAgent = FIREFOX): Promise<CustomerAgent> {
  const agent = new CustomerAgent();
  const original = agent.open.bind(agent);
  agent.open = (target, init = {}) =>
    original(target, {
      ...init,
      headers: { ...(init.headers as Record<string, string>), 'user-agent': userAgent },
    });
  const signIn = await agent.open(url('/account'));
  const account = await agent.submit(signIn, '/account/sign-in', {
    username: customer.username,
    password: customer.password,
  });
  expect(account.url).toBe(url('/account'));
  return agent;
}

/** The code the customer's app shows `steps` steps from now, from the secret the page showed. */
function appCode(secret: string, steps = 0): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: Date.now() + steps * 30_000 });
}

function text(page: Page, selector: string): string[] {
  return page.document.querySelectorAll(selector).map((element) => element.text.trim());
}

async function setUpPage(agent: CustomerAgent): Promise<Page> {
  const security = await agent.open(url('/account/security'));
  return agent.submit(security, '/two-step/start');
}

/** Turns two-step verification on as a customer would; the secret and the recovery codes shown. */
async function turnOn(agent: CustomerAgent): Promise<{ secret: string; recoveryCodes: string[] }> {
  const setUp = await setUpPage(agent);
  const secret = (text(setUp, '.secret-key code')[0] ?? '').replace(/\s+/g, '');
  const codes = await agent.submit(setUp, '/two-step/confirm', { code: appCode(secret) });
  expect(codes.status).toBe(200);
  return { secret, recoveryCodes: text(codes, '.recovery-codes code') };
}

async function isOn(customer: TestCustomer): Promise<boolean> {
  return secondFactors(passbook.knex, passbook.cipher).hasAuthenticatorApp(customer.id);
}

async function activity(agent: CustomerAgent): Promise<{ what: string; where: string }[]> {
  const account = await agent.open(url('/account'));
  return account.document.querySelectorAll('.activity .row-main').map((row) => ({
    what: row.querySelector('strong')?.text.trim() ?? '',
    where: row.querySelector('.muted')?.text.trim() ?? '',
  }));
}

describe('the Security page', () => {
  test('is behind the bank session, never cached, and linked from the account page', async () => {
    const anonymous = await new CustomerAgent().open(url('/account/security'));
    expect(anonymous.url).toBe(url('/account/sign-in'));

    const agent = await signedIn(await createTestCustomer(passbook.knex));
    const account = await agent.open(url('/account'));
    expect(account.document.querySelector('a[href="/account/security"]')).not.toBeNull();
    const security = await agent.open(url('/account/security'));
    expect(security.status).toBe(200);
    expect(security.headers.get('cache-control')).toBe('no-store');
    expect(text(security, 'h2')).toEqual(['Password', 'Two-step verification', 'Passkeys']);
    // Only the passkey script, from the bank's own origin: never an inline one.
    expect(security.body.match(/<script[^>]*>/g)).toEqual(['<script src="/assets/passkeys.js" defer>']);
    for (const id of ['current_password', 'new_password', 'confirm_password']) {
      expect(security.document.querySelector(`label[for="${id}"]`)).not.toBeNull();
    }
  });
});

describe('turning on an authenticator app', () => {
  test('shows a QR code and the secret to type, and stays off until one code from the app confirms it', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = await signedIn(customer);
    const setUp = await setUpPage(agent);
    expect(setUp.url).toBe(url('/account/security/two-step/set-up'));
    expect(setUp.headers.get('cache-control')).toBe('no-store');
    const qr = setUp.document.querySelector('img.qr-code');
    expect(qr?.getAttribute('src')).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(qr?.getAttribute('alt')).toContain('QR code');
    const shown = text(setUp, '.secret-key code')[0] ?? '';
    expect(shown).toMatch(/^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
    const secret = shown.replace(/\s+/g, '');
    expect(await isOn(customer)).toBe(false);

    const wrong = String((Number(appCode(secret)) + 500_000) % 1_000_000).padStart(6, '0');
    const refused = await agent.submit(setUp, '/two-step/confirm', { code: wrong });
    expect(refused.status).toBe(400);
    expect(text(refused, '.alert')[0]).toContain('That code is not right');
    expect(text(refused, '.secret-key code')[0]).toBe(shown);
    expect(await isOn(customer)).toBe(false);
    expect(text(await agent.open(url('/account/security')), '.badge')).toContain('Off');

    const done = await agent.submit(refused, '/two-step/confirm', { code: appCode(secret) });
    expect(done.status).toBe(200);
    expect(done.headers.get('cache-control')).toBe('no-store');
    expect(done.body).toContain('this is the only time they are shown');
    const recoveryCodes = text(done, '.recovery-codes code');
    expect(recoveryCodes).toHaveLength(10);
    for (const code of recoveryCodes) expect(code).toMatch(/^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{2}$/);
    expect(await isOn(customer)).toBe(true);

    const security = await agent.open(url('/account/security'));
    expect(text(security, '.badge')).toContain('On');
    expect(security.body).toContain('You have 10 unused recovery codes left.');
    expect(security.body).not.toContain(recoveryCodes[0]);
    // Shown once: the set-up page is gone and nothing on the page shows the codes again.
    expect((await agent.open(url('/account/security/two-step/set-up'))).url).toBe(url('/account/security'));
    const [latest] = await activity(agent);
    expect(latest?.what).toBe('Two-step verification turned on');
    expect(latest?.where).toContain('· Firefox on Windows, ');
  });

  test('the page’s secret is the one stored, encrypted', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = await signedIn(customer);
    const { secret } = await turnOn(agent);
    const row = await passbook
      .knex('authenticator_apps')
      .where({ customer_id: customer.id })
      .first<{ secret_envelope: string }>('secret_envelope');
    if (!row) throw new Error('no authenticator app stored');
    expect(row.secret_envelope).not.toContain(secret);
    const stored = passbook.cipher.decrypt(row.secret_envelope, `totp:${customer.id}`);
    expect(Secret.fromHex(stored.toString('hex')).base32).toBe(secret);
  });
});

describe('with the authenticator app on', () => {
  test('turning it off asks for a current code, then removes it and the recovery codes', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = await signedIn(customer);
    const { secret, recoveryCodes } = await turnOn(agent);
    const security = await agent.open(url('/account/security'));

    const refused = await agent.submit(security, '/two-step/turn-off', { code: '' });
    expect(refused.status).toBe(400);
    // The code that turned it on has been used.
    const replayed = await agent.submit(security, '/two-step/turn-off', { code: appCode(secret) });
    expect(replayed.status).toBe(400);
    expect(text(replayed, '.alert')[0]).toContain('That code is not right');
    expect(await isOn(customer)).toBe(true);

    const off = await agent.submit(security, '/two-step/turn-off', { code: appCode(secret, 1) });
    expect(off.url).toBe(url('/account/security?done=two-step-off'));
    expect(text(off, '.notice')[0]).toContain('Two-step verification is off');
    expect(text(off, '.badge')).toContain('Off');
    expect(await isOn(customer)).toBe(false);
    expect(await passbook.knex('recovery_codes').where({ customer_id: customer.id })).toEqual([]);
    const factors = secondFactors(passbook.knex, passbook.cipher);
    expect(await factors.verifyCode(customer.id, recoveryCodes[0] ?? '')).toEqual({ ok: false });
    expect((await activity(agent))[0]?.what).toBe('Two-step verification turned off');
  });

  test('a recovery code turns it off too', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = await signedIn(customer);
    const { recoveryCodes } = await turnOn(agent);
    const security = await agent.open(url('/account/security'));
    const off = await agent.submit(security, '/two-step/turn-off', { code: recoveryCodes[3] ?? '' });
    expect(off.url).toBe(url('/account/security?done=two-step-off'));
    expect(await isOn(customer)).toBe(false);
  });

  test('new recovery codes need a current code, are shown once, and replace the old ones', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = await signedIn(customer);
    const { secret, recoveryCodes } = await turnOn(agent);
    const security = await agent.open(url('/account/security'));
    expect((await agent.submit(security, '/recovery-codes', { code: '123456' })).status).toBe(400);

    const fresh = await agent.submit(security, '/recovery-codes', { code: appCode(secret, 1) });
    expect(fresh.status).toBe(200);
    expect(fresh.body).toContain('The old ones no longer work.');
    const codes = text(fresh, '.recovery-codes code');
    expect(codes).toHaveLength(10);
    expect(codes).not.toContain(recoveryCodes[0]);
    const factors = secondFactors(passbook.knex, passbook.cipher);
    expect(await factors.verifyCode(customer.id, recoveryCodes[0] ?? '')).toEqual({ ok: false });
    expect(await factors.verifyCode(customer.id, codes[0] ?? '')).toEqual({
      ok: true,
      method: 'recovery',
      remaining: 9,
    });
    expect((await agent.open(url('/account/security'))).body).toContain(
      'You have 9 unused recovery codes left.',
    );
    expect((await activity(agent))[0]?.what).toBe('New recovery codes made');
  });
});

describe('changing the password', () => {
  test('signs out every other session, keeps this one, and the old password stops working', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const here = await signedIn(customer);
    const elsewhere = await signedIn(
      customer,
      'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Safari/604.1',
    );
    const security = await here.open(url('/account/security'));
    const changed = await here.submit(security, '/account/security/password', {
      current_password: customer.password,
      new_password: 'a new passphrase',
      confirm_password: 'a new passphrase',
    });
    expect(changed.url).toBe(url('/account/security?done=password'));
    expect(text(changed, '.notice')[0]).toContain('signed out on every other device');

    expect((await elsewhere.open(url('/account'))).url).toBe(url('/account/sign-in'));
    expect((await here.open(url('/account'))).url).toBe(url('/account'));
    expect(await verifyCredentials(passbook.knex, customer.username, customer.password)).toMatchObject({
      verified: false,
    });
    expect(await verifyCredentials(passbook.knex, customer.username, 'a new passphrase')).toMatchObject({
      verified: true,
    });
    const [latest] = await activity(here);
    expect(latest?.what).toBe('Password changed');
    expect(latest?.where).toMatch(/^.*Firefox on Windows, \S+/);
  });

  test('a wrong current password, or new passwords that differ or are too short, change nothing', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const here = await signedIn(customer);
    const elsewhere = await signedIn(customer);
    const security = await here.open(url('/account/security'));
    const attempts: [Record<string, string>, string][] = [
      [
        {
          current_password: 'not it at all',
          new_password: 'a new passphrase',
          confirm_password: 'a new passphrase',
        },
        'Your current password is not right. Nothing was changed.',
      ],
      [
        {
          current_password: customer.password,
          new_password: 'a new passphrase',
          confirm_password: 'a new passphrasf',
        },
        'The new passwords do not match. Nothing was changed.',
      ],
      [
        { current_password: customer.password, new_password: 'short', confirm_password: 'short' },
        'The new password must be 8 to 256 characters. Nothing was changed.',
      ],
    ];
    for (const [fields, message] of attempts) {
      const refused = await here.submit(security, '/account/security/password', fields);
      expect(refused.status).toBe(400);
      expect(text(refused, '.alert').filter(Boolean)).toEqual([message]);
    }
    expect(await verifyCredentials(passbook.knex, customer.username, customer.password)).toMatchObject({
      verified: true,
    });
    expect((await elsewhere.open(url('/account'))).url).toBe(url('/account'));
  });
});

describe('forms without the page’s CSRF token', () => {
  test('are refused with 403, and nothing changes', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = await signedIn(customer);
    const elsewhere = await signedIn(customer);
    const security = await agent.open(url('/account/security'));
    for (const csrf of ['', 'forged']) {
      const password = await agent.submit(security, '/account/security/password', {
        csrf,
        current_password: customer.password,
        new_password: 'a new passphrase',
        confirm_password: 'a new passphrase',
      });
      expect(password.status).toBe(403);
      expect((await agent.submit(security, '/two-step/start', { csrf })).status).toBe(403);
    }
    expect(await verifyCredentials(passbook.knex, customer.username, customer.password)).toMatchObject({
      verified: true,
    });
    expect((await elsewhere.open(url('/account'))).url).toBe(url('/account'));
    expect(await passbook.knex('authenticator_apps').where({ customer_id: customer.id })).toEqual([]);

    const { secret } = await turnOn(agent);
    const on = await agent.open(url('/account/security'));
    const off = await agent.submit(on, '/two-step/turn-off', { csrf: '', code: appCode(secret, 1) });
    expect(off.status).toBe(403);
    const codes = await agent.submit(on, '/recovery-codes', { csrf: 'forged', code: appCode(secret, 1) });
    expect(codes.status).toBe(403);
    expect(await isOn(customer)).toBe(true);
    // The refused forms used no code: the same code still works.
    expect((await agent.submit(on, '/two-step/turn-off', { code: appCode(secret, 1) })).status).toBe(200);
    expect(await isOn(customer)).toBe(false);
  });

  test('a token from another session does not work', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const agent = await signedIn(customer);
    const other = await signedIn(customer);
    const otherPage = await other.open(url('/account/security'));
    const token = otherPage.document.querySelector('input[name="csrf"]')?.getAttribute('value') ?? '';
    const security = await agent.open(url('/account/security'));
    expect((await agent.submit(security, '/two-step/start', { csrf: token })).status).toBe(403);
  });
});

describe('the activity list', () => {
  test('names the security events, with the device and address they came from', async () => {
    const customer = await createTestCustomer(passbook.knex);
    const origin = { ip: '203.0.113.9', userAgent: FIREFOX };
    for (const type of ['recovery_code_used', 'passkey_added', 'passkey_removed'] as const) {
      await recordEvent(passbook.knex, { customerId: customer.id, type, ...origin });
    }
    const agent = await signedIn(customer);
    const items = await activity(agent);
    expect(items.slice(1, 4).map((item) => item.what)).toEqual([
      'Passkey removed',
      'Passkey added',
      'Recovery code used',
    ]);
    for (const item of items.slice(1, 4)) expect(item.where).toContain('· Firefox on Windows, 203.0.113.9');
  });
});
