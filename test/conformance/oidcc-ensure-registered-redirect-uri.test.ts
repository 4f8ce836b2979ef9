import { TEST_REDIRECT_URI, registerTestApp, useTestPassbook } from '../support/passbook.ts';
import { authorizationRequest, discoverAs } from '../support/third-party-app.ts';

const passbook = useTestPassbook();

const SECOND_REDIRECT_URI = 'https://app.example/other-callback';

async function authorize(url: URL): Promise<{ response: Response; body: string }> {
  const response = await fetch(url, { redirect: 'manual' });
  return { response, body: await response.text() };
}

function expectErrorPageWithoutRedirect({ response, body }: { response: Response; body: string }): void {
  expect(response.status).toBeGreaterThanOrEqual(400);
  expect(response.status).toBeLessThan(500);
  expect(response.headers.get('location')).toBeNull();
  expect(response.headers.get('content-type')).toMatch(/^text\/html\b/);
  expect(body).toMatch(/<html/i);
  expect(body).not.toMatch(/\bat [^\n]*:\d+:\d+/);
  expect(body).not.toMatch(/node_modules|Error:/);
}

describe('oidcc-ensure-registered-redirect-uri: the authorization endpoint never redirects to an unregistered URI', () => {
  test.each([
    ['another host', 'https://attacker.example/callback'],
    ['a host that merely starts with the registered one', 'https://app.example.attacker.example/callback'],
    ['an added query', `${TEST_REDIRECT_URI}?next=https://attacker.example`],
    ['a longer path', `${TEST_REDIRECT_URI}/more`],
    ['http instead of https', 'http://app.example/callback'],
  ])('a redirect_uri with %s gets an HTML error page, not a redirect', async (_label, redirectUri) => {
    const app = await registerTestApp(passbook);
    const request = await authorizationRequest(await discoverAs(passbook, app), 'openid', {
      redirect_uri: redirectUri,
    });
    expectErrorPageWithoutRedirect(await authorize(request.url));
  });

  test('a request without redirect_uri from an app with one registered URI gets an HTML error page', async () => {
    const app = await registerTestApp(passbook);
    const request = await authorizationRequest(await discoverAs(passbook, app), 'openid');
    request.url.searchParams.delete('redirect_uri');
    expectErrorPageWithoutRedirect(await authorize(request.url));
  });

  test('a request without redirect_uri from an app with two registered URIs gets an HTML error page', async () => {
    const app = await registerTestApp(passbook, { redirectUris: [TEST_REDIRECT_URI, SECOND_REDIRECT_URI] });
    const request = await authorizationRequest(await discoverAs(passbook, app), 'openid');
    request.url.searchParams.delete('redirect_uri');
    expectErrorPageWithoutRedirect(await authorize(request.url));
  });

  test('a redirect_uri registered by another app gets an HTML error page', async () => {
    const otherAppRedirectUri = 'https://other-app.example/callback';
    await registerTestApp(passbook, { redirectUris: [otherAppRedirectUri] });
    const app = await registerTestApp(passbook);
    const request = await authorizationRequest(await discoverAs(passbook, app), 'openid', {
      redirect_uri: otherAppRedirectUri,
    });
    expectErrorPageWithoutRedirect(await authorize(request.url));
  });

  test('each of two registered redirect URIs is still accepted', async () => {
    const app = await registerTestApp(passbook, { redirectUris: [TEST_REDIRECT_URI, SECOND_REDIRECT_URI] });
    const config = await discoverAs(passbook, app);
    for (const redirectUri of [TEST_REDIRECT_URI, SECOND_REDIRECT_URI]) {
      const request = await authorizationRequest(config, 'openid', { redirect_uri: redirectUri });
      const { response } = await authorize(request.url);
      expect([302, 303]).toContain(response.status);
      const location = new URL(response.headers.get('location') ?? '', passbook.issuer);
      expect(location.pathname).toMatch(/^\/interaction\//);
    }
  });
});
