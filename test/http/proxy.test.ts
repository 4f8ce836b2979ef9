import {
  TEST_REDIRECT_URI,
  registerTestApp,
  startTestPassbook,
  type TestPassbook,
} from '../support/passbook.ts';

const PUBLIC_ISSUER = 'https://bank.example';

/** Starts an authorization request straight at the server, as the proxy would forward it. */
async function interactionCookies(passbook: TestPassbook, headers: Record<string, string>) {
  const app = await registerTestApp(passbook);
  const params = new URLSearchParams({
    client_id: app.client_id,
    redirect_uri: TEST_REDIRECT_URI,
    response_type: 'code',
    scope: 'openid',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  });
  const response = await fetch(`${passbook.url}/auth?${params.toString()}`, { headers, redirect: 'manual' });
  return {
    status: response.status,
    location: response.headers.get('location'),
    cookies: response.headers.getSetCookie(),
  };
}

describe('behind a TLS-terminating proxy', () => {
  let trusting: TestPassbook;

  beforeAll(async () => {
    trusting = await startTestPassbook({ ISSUER: PUBLIC_ISSUER, TRUST_PROXY: 'true' });
  });

  afterAll(async () => {
    await trusting.close();
  });

  test('with TRUST_PROXY the forwarded https request gets secure, host-only cookies and https redirects', async () => {
    const { status, location, cookies } = await interactionCookies(trusting, {
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'bank.example',
    });
    expect(status).toBe(303);
    expect(location).toMatch(/^\/interaction\/[\w-]+$/);
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) {
      expect(cookie).toMatch(/;\s*secure/i);
      expect(cookie).toMatch(/;\s*httponly/i);
      expect(cookie).toMatch(/;\s*samesite=lax/i);
      expect(cookie).not.toMatch(/;\s*domain=/i);
    }
    const discovery = await fetch(`${trusting.url}/.well-known/openid-configuration`, {
      headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'bank.example' },
    });
    const metadata = (await discovery.json()) as { issuer: string; authorization_endpoint: string };
    expect(metadata.issuer).toBe(PUBLIC_ISSUER);
    expect(metadata.authorization_endpoint).toBe(`${PUBLIC_ISSUER}/auth`);
  });

  test('an https response carries Strict-Transport-Security', async () => {
    const response = await fetch(`${trusting.url}/healthz`, { headers: { 'x-forwarded-proto': 'https' } });
    expect(response.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
  });
});

test('without TRUST_PROXY, forwarded headers are ignored: plain http gets no secure cookie', async () => {
  const passbook = await startTestPassbook();
  try {
    const { cookies } = await interactionCookies(passbook, { 'x-forwarded-proto': 'https' });
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie).not.toMatch(/;\s*secure/i);
    const response = await fetch(`${passbook.url}/healthz`, { headers: { 'x-forwarded-proto': 'https' } });
    expect(response.headers.get('strict-transport-security')).toBeNull();
  } finally {
    await passbook.close();
  }
});
