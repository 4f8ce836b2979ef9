import { useTestPassbook } from '../support/passbook.ts';

const passbook = useTestPassbook();

test.each(['/token', '/token/introspection', '/token/revocation', '/request'])(
  'GET %s answers 405 with an OAuth error and Allow: POST',
  async (path) => {
    const response = await fetch(`${passbook.issuer}${path}`);
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
    expect(await response.json()).toEqual({
      error: 'invalid_request',
      error_description: `${path} accepts only POST`,
    });
  },
);

test.each(['/auth', '/session/end'])(
  'POST %s answers 405 with the error page and Allow: GET',
  async (path) => {
    const response = await fetch(`${passbook.issuer}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'client_id=x',
    });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET');
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(await response.text()).toContain('This address does not accept that kind of request.');
  },
);

test('an unknown page is a friendly 404 of the bank, not a stack trace', async () => {
  const response = await fetch(`${passbook.issuer}/interaction/nope/unknown`);
  expect(response.status).toBeGreaterThanOrEqual(400);
  expect(response.status).toBeLessThan(500);
  expect(await response.text()).not.toMatch(/\bat \S+ \(|node_modules|Error:/);
});
