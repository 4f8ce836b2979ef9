import { unescape as unescapeQuery } from 'node:querystring';
import fc from 'fast-check';

/**
 * The fuzz test's requests: every endpoint of Passbook and of the bank API, with parameters drawn
 * from the real parameter names and values plus hostile text (NUL, lone surrogates as raw UTF-8
 * bytes, broken %-escapes, very long values, repeated keys), random methods, content types,
 * bodies, credentials and cookies. A request is plain data, so that fast-check can print and
 * shrink the one that fails.
 *
 * What these generators never produce keeps the stored state fixed (see stored-state.ts): the
 * customer's cookies never travel with the registered redirect_uri (a signed-in customer with a
 * valid request would get a code) nor to /auth/:uid (it would resume the sign-in), no real code, token or CSRF token is ever a parameter value,
 * and the customer's only account is empty, so no payment can be booked.
 */

/** What the generators need to know of the running servers' real data. */
export interface FuzzWorld {
  /** Client ids that exist: a confidential app and a public one. */
  clientIds: string[];
  redirectUri: string;
  /** A live interaction of the customer's browser (its cookie is in the customer's jar). */
  interactionUid: string;
  /** The uid of the customer's own session. */
  sessionUid: string;
  /** The customer's (empty) bank account. */
  accountId: string;
  /** Its IBAN, the debtor account of the payment token's one approved payment. */
  accountIban: string;
  username: string;
}

export type Credentials =
  | 'none'
  | 'app-basic'
  | 'resource-server-basic'
  | 'wrong-secret-basic'
  | 'hostile-basic'
  | 'access-token'
  | 'payment-token'
  | 'hostile-bearer'
  /** The live access token in the DPoP scheme, with a hostile DPoP proof. */
  | 'hostile-dpop'
  | 'garbage';

export type Cookies = 'none' | 'customer' | 'garbage';

export interface FuzzRequest {
  server: 'passbook' | 'bank';
  /** The endpoint as the assertions know it, e.g. "POST /token". */
  endpoint: string;
  /** Whether the method and path are the endpoint's own (not a random method or an extra segment). */
  onRoute: boolean;
  method: string;
  /** Raw path and query, exactly as they go on the wire. */
  path: string;
  query: string;
  credentials: Credentials;
  /** Raw value of the hostile Basic or Bearer credentials. */
  hostileCredential: string;
  /** The Idempotency-Key header, if any (the bank API's payments need one). */
  idempotencyKey: string | undefined;
  cookies: Cookies;
  accept: string | undefined;
  contentType: string | undefined;
  body: string | undefined;
  /** The body is raw bytes, one per character (latin1), rather than UTF-8 text. */
  bodyIsBytes: boolean;
}

/** Raw fragments a careless decoder chokes on. */
const HOSTILE_FRAGMENTS = [
  '%00',
  'a%00b',
  '%ED%A0%80', // a lone high surrogate written as UTF-8 (CESU-8)
  '%ED%BF%BF', // a lone low surrogate
  '%C0%80', // an overlong NUL
  '%FF',
  '%FE%FF',
  '%',
  '%G0',
  '%0',
  '%%00',
  '%2500',
  '+',
  '%2B',
  '%26',
  '%3D',
  '%5C',
  '%0D%0A',
  '%E2%80%AE',
  '%F0%9F%92%A9',
  '%EF%BF%BD',
  '\\u0000',
  '..%2F..%2F',
];

/** Real parameter names of OAuth, OpenID Connect and the bank's forms and API. */
const PARAMETER_NAMES = [
  'client_id',
  'client_secret',
  'client_assertion',
  'client_assertion_type',
  'redirect_uri',
  'response_type',
  'response_mode',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'prompt',
  'max_age',
  'login_hint',
  'id_token_hint',
  'ui_locales',
  'claims',
  'acr_values',
  'request',
  'request_uri',
  'resource',
  'grant_type',
  'code',
  'code_verifier',
  'refresh_token',
  'token',
  'token_type_hint',
  'post_logout_redirect_uri',
  'logout_hint',
  'xsrf',
  'logout',
  'csrf',
  'username',
  'password',
  'decision',
  'access_token',
  'limit',
];

const PKCE_CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

function realValues(world: FuzzWorld): string[] {
  return [
    ...world.clientIds,
    world.redirectUri,
    `${world.redirectUri}/elsewhere`,
    'https://attacker.example/callback',
    'code',
    'token',
    'id_token',
    'openid',
    'openid profile email',
    'openid offline_access accounts:read',
    'S256',
    'plain',
    PKCE_CHALLENGE,
    'none',
    'login',
    'consent',
    'authorization_code',
    'refresh_token',
    'client_credentials',
    'access_token',
    'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    'urn:ietf:params:oauth:request_uri:abc',
    'allow',
    'deny',
    'yes',
    '0',
    '-1',
    '201',
    '1e3',
    world.interactionUid,
    world.sessionUid,
    world.accountId,
    world.username,
    '{"userinfo":{"email":null}}',
    'eyJhbGciOiJub25lIn0.e30.',
  ];
}

function encode(text: string): string {
  return encodeURIComponent(text);
}

/** One raw, already %-encoded fragment of a key or value. */
function fragment(world: FuzzWorld): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...realValues(world)).map(encode) },
    { weight: 4, arbitrary: fc.constantFrom(...HOSTILE_FRAGMENTS) },
    { weight: 2, arbitrary: fc.string({ maxLength: 12 }).map(encode) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }).map(encode) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom('A', '%00', '%41', '%C3%A9', 'x%ED%A0%80'),
          fc.integer({ min: 100, max: 1500 }),
        )
        .map(([unit, times]) => unit.repeat(times)),
    },
  );
}

function rawValue(world: FuzzWorld): fc.Arbitrary<string> {
  return fc.array(fragment(world), { minLength: 0, maxLength: 3 }).map((parts) => parts.join(''));
}

function rawKey(world: FuzzWorld, names: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...names, ...PARAMETER_NAMES) },
    { weight: 1, arbitrary: rawValue(world) },
  );
}

/** A raw key=value pair; `value` undefined writes the key alone. */
export interface Pair {
  key: string;
  value: string | undefined;
}

function randomPair(world: FuzzWorld, names: readonly string[]): fc.Arbitrary<Pair> {
  return fc.record({
    key: rawKey(world, names),
    value: fc.option(rawValue(world), { freq: 12, nil: undefined }),
  });
}

/** A nearly valid request: each pair of the template kept, replaced by a hostile value, or dropped. */
function mutatedPairs(
  world: FuzzWorld,
  template: Record<string, string>,
  names: readonly string[],
): fc.Arbitrary<Pair[]> {
  const kept = Object.entries(template).map(([key, value]) =>
    fc.oneof(
      { weight: 5, arbitrary: fc.constant<Pair | null>({ key, value: encode(value) }) },
      { weight: 2, arbitrary: rawValue(world).map<Pair | null>((raw) => ({ key, value: raw })) },
      { weight: 1, arbitrary: fc.constant<Pair | null>(null) },
    ),
  );
  return fc
    .tuple(fc.tuple(...kept), fc.array(randomPair(world, names), { maxLength: 4 }))
    .map(([base, extra]) => [...base.filter((pair): pair is Pair => pair !== null), ...extra]);
}

function pairsFor(
  world: FuzzWorld,
  names: readonly string[],
  template: Record<string, string> | undefined,
): fc.Arbitrary<Pair[]> {
  const random = fc.array(randomPair(world, names), { maxLength: 8 });
  if (!template) return random;
  return fc.oneof(
    { weight: 3, arbitrary: mutatedPairs(world, template, names) },
    { weight: 1, arbitrary: random },
  );
}

function formEncoded(pairs: Pair[]): string {
  return pairs.map(({ key, value }) => (value === undefined ? key : `${key}=${value}`)).join('&');
}

/** Raw fragments decoded for a JSON body; the raw surrogate bytes become real lone surrogates there. */
function decodeForJson(raw: string): string {
  const withSurrogates = raw.replaceAll('%ED%A0%80', '\uD800').replaceAll('%ED%BF%BF', '\uDFFF');
  return unescapeQuery(withSurrogates);
}

type BodyFormat = 'form' | 'json' | 'json-nested' | 'multipart' | 'bytes' | 'empty';

function encodeBody(format: BodyFormat, pairs: Pair[], bytes: string, nested: fc.JsonValue): string {
  switch (format) {
    case 'form':
      return formEncoded(pairs);
    case 'json':
      return JSON.stringify(
        Object.fromEntries(pairs.map(({ key, value }) => [decodeForJson(key), decodeForJson(value ?? '')])),
      );
    case 'json-nested':
      return JSON.stringify({
        ...Object.fromEntries(pairs.map(({ key }) => [decodeForJson(key), nested])),
      });
    case 'multipart':
      return [
        ...pairs.map(
          ({ key, value }) =>
            `--XyZ\r\nContent-Disposition: form-data; name="${decodeForJson(key)}"\r\n\r\n${decodeForJson(value ?? '')}\r\n`,
        ),
        '--XyZ--\r\n',
      ].join('');
    case 'bytes':
      return bytes;
    case 'empty':
      return '';
  }
}

const CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/x-www-form-urlencoded; charset=iso-8859-1',
  'application/x-www-form-urlencoded; charset=no-such-charset',
  'application/json',
  'application/json; charset=utf-16le',
  'application/json; charset="',
  'multipart/form-data; boundary=XyZ',
  'multipart/form-data',
  'text/plain',
  'application/jwt',
  'application/xml',
  '*/*',
  'x',
  ';;;=',
];

function matchingContentType(format: BodyFormat): string | undefined {
  if (format === 'form') return 'application/x-www-form-urlencoded';
  if (format === 'json' || format === 'json-nested') return 'application/json';
  if (format === 'multipart') return 'multipart/form-data; boundary=XyZ';
  return undefined;
}

interface EndpointSpec {
  server: FuzzRequest['server'];
  method: 'GET' | 'POST';
  /** The route as the assertions name it. */
  route: string;
  /** Raw paths this route is reached at (with real or hostile path parameters). */
  paths: fc.Arbitrary<string>;
  /** Names this endpoint reads, drawn more often than the others. */
  names: readonly string[];
  /** A nearly valid request to mutate, so that the fuzz reaches past the first check. */
  template?: Record<string, string>;
  /** Whether the customer's cookies may travel with this request (see the file's comment). */
  customerCookies: boolean;
  credentials: readonly Credentials[];
  /** Where the parameters go: the query (GET) or the body (POST, a form unless the API wants JSON). */
  bodyFormat: BodyFormat;
}

function pathParameter(world: FuzzWorld, real: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...real).map(encode) },
    {
      weight: 3,
      arbitrary: fc
        .array(fragment(world), { minLength: 1, maxLength: 2 })
        .map((parts) => parts.join(''))
        // An empty segment, or a backslash (URLs read it as a slash), is another route.
        .filter((raw) => raw.length > 0 && !raw.includes('\\')),
    },
  );
}

const CLIENT_AUTH: Credentials[] = [
  'none',
  'app-basic',
  'app-basic',
  'resource-server-basic',
  'wrong-secret-basic',
  'hostile-basic',
  'garbage',
];
const PAGE_AUTH: Credentials[] = ['none', 'none', 'hostile-basic', 'garbage'];
const BEARER_AUTH: Credentials[] = [
  'access-token',
  'access-token',
  'access-token',
  'hostile-bearer',
  'hostile-dpop',
  'none',
  'garbage',
];

const PAYMENT_AUTH: Credentials[] = [
  'payment-token',
  'payment-token',
  'payment-token',
  'access-token',
  'hostile-bearer',
  'none',
  'garbage',
];

function endpoints(world: FuzzWorld): EndpointSpec[] {
  const [appId = 'app', publicId = 'public-app'] = world.clientIds;
  const authorization = {
    client_id: appId,
    response_type: 'code',
    scope: 'openid profile',
    redirect_uri: world.redirectUri,
    code_challenge: PKCE_CHALLENGE,
    code_challenge_method: 'S256',
    state: 'some-state',
    nonce: 'some-nonce',
  };
  const fixed = (path: string) => fc.constant(path);
  const interaction = (suffix: string) =>
    pathParameter(world, [world.interactionUid]).map((uid) => `/interaction/${uid}${suffix}`);
  return [
    {
      server: 'passbook',
      method: 'GET',
      route: '/.well-known/openid-configuration',
      paths: fixed('/.well-known/openid-configuration'),
      names: [],
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'passbook',
      method: 'GET',
      route: '/jwks',
      paths: fixed('/jwks'),
      names: [],
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    {
      // The registered redirect_uri, so that the request gets far; never with the customer's cookies.
      server: 'passbook',
      method: 'GET',
      route: '/auth',
      paths: fixed('/auth'),
      names: Object.keys(authorization),
      template: authorization,
      customerCookies: false,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'passbook',
      method: 'GET',
      route: '/auth',
      paths: fixed('/auth'),
      names: Object.keys(authorization),
      template: { ...authorization, client_id: publicId, redirect_uri: `${world.redirectUri}/elsewhere` },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'passbook',
      method: 'GET',
      route: '/auth/:uid',
      paths: pathParameter(world, [world.interactionUid]).map((uid) => `/auth/${uid}`),
      names: [],
      // With the browser's resume cookie this is the real resumption of the sign-in in progress,
      // which replaces the interaction and the session: a valid request, so never with them.
      customerCookies: false,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'passbook',
      method: 'POST',
      route: '/token',
      paths: fixed('/token'),
      names: ['grant_type', 'code', 'code_verifier', 'redirect_uri', 'refresh_token', 'client_id'],
      template: {
        grant_type: 'authorization_code',
        code: 'not-a-real-code',
        code_verifier: 'a'.repeat(43),
        redirect_uri: world.redirectUri,
      },
      customerCookies: true,
      credentials: CLIENT_AUTH,
      bodyFormat: 'form',
    },
    {
      server: 'passbook',
      method: 'POST',
      route: '/token/introspection',
      paths: fixed('/token/introspection'),
      names: ['token', 'token_type_hint', 'client_id'],
      template: { token: 'not-a-real-token', token_type_hint: 'access_token' },
      customerCookies: true,
      credentials: CLIENT_AUTH,
      bodyFormat: 'form',
    },
    {
      server: 'passbook',
      method: 'POST',
      route: '/token/revocation',
      paths: fixed('/token/revocation'),
      names: ['token', 'token_type_hint', 'client_id'],
      template: { token: 'not-a-real-token', token_type_hint: 'refresh_token' },
      customerCookies: true,
      credentials: CLIENT_AUTH,
      bodyFormat: 'form',
    },
    {
      // A valid pushed request is stored (and accounted for); the comparison expects exactly those.
      server: 'passbook',
      method: 'POST',
      route: '/request',
      paths: fixed('/request'),
      names: Object.keys(authorization),
      template: authorization,
      customerCookies: true,
      credentials: CLIENT_AUTH,
      bodyFormat: 'form',
    },
    {
      server: 'passbook',
      method: 'GET',
      route: '/me',
      paths: fixed('/me'),
      names: ['access_token'],
      customerCookies: true,
      credentials: BEARER_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'passbook',
      method: 'POST',
      route: '/me',
      paths: fixed('/me'),
      names: ['access_token'],
      customerCookies: true,
      credentials: BEARER_AUTH,
      bodyFormat: 'form',
    },
    {
      server: 'passbook',
      method: 'GET',
      route: '/session/end',
      paths: fixed('/session/end'),
      names: ['client_id', 'post_logout_redirect_uri', 'state', 'id_token_hint', 'logout_hint', 'ui_locales'],
      template: { client_id: publicId, post_logout_redirect_uri: world.redirectUri, state: 'some-state' },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'passbook',
      method: 'POST',
      route: '/session/end/confirm',
      paths: fixed('/session/end/confirm'),
      names: ['xsrf', 'logout'],
      template: { xsrf: 'not-the-secret', logout: 'yes' },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'form',
    },
    {
      server: 'passbook',
      method: 'GET',
      route: '/interaction/:uid',
      paths: interaction(''),
      names: [],
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    ...(['/login', '/consent', '/abort'] as const).map((suffix): EndpointSpec => ({
      server: 'passbook',
      method: 'POST',
      route: `/interaction/:uid${suffix}`,
      paths: interaction(suffix),
      names: ['csrf', 'username', 'password', 'decision'],
      template: { csrf: 'not-the-token', username: world.username, password: 'wrong', decision: 'allow' },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'form',
    })),
    {
      server: 'passbook',
      method: 'GET',
      route: '/account',
      paths: fixed('/account'),
      names: [],
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'passbook',
      method: 'GET',
      route: '/account/sign-in',
      paths: fixed('/account/sign-in'),
      names: [],
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'passbook',
      method: 'POST',
      route: '/account/sign-in',
      paths: fixed('/account/sign-in'),
      names: ['csrf', 'username', 'password'],
      template: { csrf: 'not-the-token', username: world.username, password: 'wrong' },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'form',
    },
    {
      server: 'passbook',
      method: 'POST',
      route: '/account/apps/:clientId/revoke',
      paths: pathParameter(world, world.clientIds).map((clientId) => `/account/apps/${clientId}/revoke`),
      names: ['csrf'],
      template: { csrf: 'not-the-token' },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'form',
    },
    {
      server: 'passbook',
      method: 'POST',
      route: '/account/sessions/:uid/sign-out',
      paths: pathParameter(world, [world.sessionUid]).map((uid) => `/account/sessions/${uid}/sign-out`),
      names: ['csrf'],
      template: { csrf: 'not-the-token' },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'form',
    },
    ...(['/account/security', '/account/security/two-step/set-up'] as const).map((path): EndpointSpec => ({
      server: 'passbook',
      method: 'GET',
      route: path,
      paths: fixed(path),
      names: ['done'],
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'empty',
    })),
    {
      server: 'passbook',
      method: 'POST',
      route: '/account/security/password',
      paths: fixed('/account/security/password'),
      names: ['csrf', 'current_password', 'new_password', 'confirm_password'],
      template: {
        csrf: 'not-the-token',
        current_password: 'wrong',
        new_password: 'a new passphrase',
        confirm_password: 'a new passphrase',
      },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'form',
    },
    ...(
      [
        '/account/security/two-step/start',
        '/account/security/two-step/confirm',
        '/account/security/two-step/turn-off',
        '/account/security/recovery-codes',
      ] as const
    ).map((path): EndpointSpec => ({
      server: 'passbook',
      method: 'POST',
      route: path,
      paths: fixed(path),
      names: ['csrf', 'code'],
      template: { csrf: 'not-the-token', code: '123456' },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'form',
    })),
    ...(['/account/sessions/sign-out-others', '/account/sign-out'] as const).map((path): EndpointSpec => ({
      server: 'passbook',
      method: 'POST',
      route: path,
      paths: fixed(path),
      names: ['csrf'],
      template: { csrf: 'not-the-token' },
      customerCookies: true,
      credentials: PAGE_AUTH,
      bodyFormat: 'form',
    })),
    {
      server: 'bank',
      method: 'GET',
      route: '/accounts',
      paths: fixed('/accounts'),
      names: ['limit'],
      customerCookies: false,
      credentials: BEARER_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'bank',
      method: 'GET',
      route: '/accounts/:id/transactions',
      paths: pathParameter(world, [world.accountId]).map((id) => `/accounts/${id}/transactions`),
      names: ['limit'],
      template: { limit: '10' },
      customerCookies: false,
      credentials: BEARER_AUTH,
      bodyFormat: 'empty',
    },
    {
      server: 'bank',
      method: 'GET',
      route: '/transactions',
      paths: fixed('/transactions'),
      names: ['limit'],
      template: { limit: '10' },
      customerCookies: false,
      credentials: BEARER_AUTH,
      bodyFormat: 'empty',
    },
    {
      // The account is empty: every payment composed here is refused, whatever it says.
      server: 'bank',
      method: 'POST',
      route: '/payments',
      paths: fixed('/payments'),
      names: [
        'instructedAmount',
        'creditorName',
        'creditorAccount',
        'remittanceInformationUnstructured',
        'debtorAccount',
      ],
      template: {
        instructedAmount: '1.00',
        creditorName: 'Jo Bloggs',
        creditorAccount: 'NL91ABNA0417164300',
        remittanceInformationUnstructured: 'Rent',
        debtorAccount: world.accountIban,
      },
      customerCookies: false,
      credentials: PAYMENT_AUTH,
      bodyFormat: 'json',
    },
    {
      server: 'bank',
      method: 'GET',
      route: '/payments/:id',
      paths: pathParameter(world, ['6f0c4c4e-9d7b-4c1e-8f38-3d2f1c0b9a77']).map((id) => `/payments/${id}`),
      names: [],
      customerCookies: false,
      credentials: PAYMENT_AUTH,
      bodyFormat: 'empty',
    },
  ];
}

const OTHER_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];

function requestFor(world: FuzzWorld, spec: EndpointSpec): fc.Arbitrary<FuzzRequest> {
  const formats: BodyFormat[] = ['form', 'json', 'json-nested', 'multipart', 'bytes', 'empty'];
  return fc
    .record({
      method: fc.oneof(
        { weight: 9, arbitrary: fc.constant(spec.method) },
        { weight: 1, arbitrary: fc.constantFrom(...OTHER_METHODS) },
      ),
      path: spec.paths,
      pathSuffix: fc.oneof(
        { weight: 19, arbitrary: fc.constant('') },
        { weight: 1, arbitrary: fragment(world).map((raw) => `/${raw}`) },
      ),
      pairs: pairsFor(world, spec.names, spec.template),
      queryPairs: fc.array(randomPair(world, spec.names), { maxLength: 2 }),
      format: fc.oneof(
        { weight: 6, arbitrary: fc.constant(spec.bodyFormat) },
        { weight: 4, arbitrary: fc.constantFrom(...formats) },
      ),
      contentType: fc.oneof(
        { weight: 6, arbitrary: fc.constant<string | undefined>('matching') },
        { weight: 3, arbitrary: fc.constantFrom<string | undefined>(...CONTENT_TYPES) },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
      bytes: fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
      nested: fc.jsonValue({ maxDepth: 2 }),
      credentials: fc.constantFrom(...spec.credentials),
      hostileCredential: rawValue(world),
      idempotencyKey: fc.oneof(
        { weight: 6, arbitrary: fc.constant<string | undefined>('fuzz-key') },
        {
          weight: 2,
          arbitrary: fc.constantFrom<string | undefined>(undefined, '', 'two words', 'k'.repeat(65)),
        },
        { weight: 2, arbitrary: rawValue(world) },
      ),
      accept: fc.constantFrom(
        undefined,
        'text/html,application/xhtml+xml',
        'application/json',
        '*/*',
        'x/y;q=z',
      ),
      cookies: spec.customerCookies
        ? fc.constantFrom<Cookies>('none', 'customer', 'customer', 'garbage')
        : fc.constantFrom<Cookies>('none', 'garbage'),
    })
    .map((drawn) => {
      const inBody = spec.method === 'POST';
      const query = formEncoded(inBody ? drawn.queryPairs : [...drawn.pairs, ...drawn.queryPairs]);
      const body = inBody ? encodeBody(drawn.format, drawn.pairs, drawn.bytes, drawn.nested) : undefined;
      const contentType =
        drawn.contentType === 'matching'
          ? matchingContentType(inBody ? drawn.format : 'empty')
          : drawn.contentType;
      return {
        server: spec.server,
        endpoint: `${spec.method} ${spec.route}`,
        onRoute: drawn.method === spec.method && drawn.pathSuffix === '',
        method: drawn.method,
        path: `${drawn.path}${drawn.pathSuffix}`,
        query,
        credentials: drawn.credentials,
        hostileCredential: drawn.hostileCredential,
        idempotencyKey: drawn.idempotencyKey,
        cookies: drawn.cookies,
        accept: drawn.accept,
        contentType,
        body,
        bodyIsBytes: inBody && drawn.format === 'bytes',
      };
    });
}

/** Any request to any endpoint, each endpoint about as likely as the next. */
export function fuzzRequests(world: FuzzWorld): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(...endpoints(world).map((spec) => requestFor(world, spec)));
}
