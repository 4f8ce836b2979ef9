import type { BrowserContext, Page } from 'playwright-core';
import { startTestPassbook, type TestPassbook } from './passbook.ts';
import { freePort } from '../../scripts/ports.ts';

/**
 * What passkey tests need around a real browser: a Passbook whose issuer is `localhost` (WebAuthn
 * refuses an IP address as the relying party's id, and allows plain http only on localhost), and
 * Chromium's virtual authenticator, reached through the DevTools protocol, in place of a
 * fingerprint reader.
 */

/** A Passbook at http://localhost:<port>, on this run's database. */
export async function startLocalhostPassbook(): Promise<TestPassbook> {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const passbook = await startTestPassbook({ PORT: String(port), ISSUER: issuer });
  return { ...passbook, issuer };
}

/**
 * A platform authenticator with a fingerprint that always matches: it keeps discoverable
 * credentials and verifies the user, as a phone's or laptop's built-in one does.
 */
export async function addVirtualAuthenticator(context: BrowserContext, page: Page): Promise<string> {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return authenticatorId;
}

/** The JSON body the page sends to a URL, captured on its way (and let through unless `abort`). */
export async function captureJsonPost(
  page: Page,
  url: string,
  options: { abort?: boolean } = {},
): Promise<() => Promise<string>> {
  let resolveBody: (body: string) => void = () => undefined;
  const body = new Promise<string>((resolve) => {
    resolveBody = resolve;
  });
  await page.route(url, async (route) => {
    resolveBody(route.request().postData() ?? '');
    if (options.abort) await route.abort();
    else await route.continue();
  });
  return async () => {
    const captured = await body;
    await page.unroute(url);
    return captured;
  };
}

/** The browser's cookies for a URL as a Cookie header, so a test can replay what the page sent. */
export async function cookieHeader(context: BrowserContext, url: string): Promise<string> {
  const cookies = await context.cookies(url);
  return cookies.map((cookie) => `${cookie.name}=${cookie.value}`).join('; ');
}
