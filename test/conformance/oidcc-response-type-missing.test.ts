import { TEST_REDIRECT_URI, registerTestApp, useTestPassbook } from '../support/passbook.ts';
import { authorizationRequest, discoverAs } from '../support/third-party-app.ts';

const passbook = useTestPassbook();

async function requestWithoutResponseType() {
  const app = await registerTestApp(passbook);
  const config = await discoverAs(passbook, app);
  const request = await authorizationRequest(config, 'openid');
  request.url.searchParams.delete('response_type');
  const response = await fetch(request.url, { redirect: 'manual' });
  return { request, response };
}

function callbackOf(response: Response): URL {
  expect([302, 303]).toContain(response.status);
  const location = response.headers.get('location') ?? '';
  expect(location.startsWith(`${TEST_REDIRECT_URI}?`)).toBe(true);
  return new URL(location);
}

describe('oidcc-response-type-missing: an authorization request without response_type', () => {
  test('is sent back to the app with invalid_request or unsupported_response_type, and no code', async () => {
    const { response } = await requestWithoutResponseType();
    const callback = callbackOf(response);
    expect(['invalid_request', 'unsupported_response_type']).toContain(callback.searchParams.get('error'));
    expect(callback.searchParams.has('code')).toBe(false);
    expect(callback.searchParams.has('access_token')).toBe(false);
    expect(callback.searchParams.has('id_token')).toBe(false);
  });

  test('echoes the state and names the issuer in the error response', async () => {
    const { request, response } = await requestWithoutResponseType();
    const callback = callbackOf(response);
    expect(callback.searchParams.get('state')).toBe(request.state);
    expect(callback.searchParams.get('iss')).toBe(passbook.issuer);
  });

  test('gives an error_description, if any, in the RFC 6749 character set: no CR, LF, TAB, quote or backslash', async () => {
    const { response } = await requestWithoutResponseType();
    const description = callbackOf(response).searchParams.get('error_description') ?? '';
    expect(description).not.toMatch(/[\r\n\t]/);
    expect(description).toMatch(/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/);
  });
});
