import { createHash, randomBytes } from 'node:crypto';
import type autocannon from 'autocannon';

/**
 * What the load generator sends, as autocannon request sequences. Every request that needs a
 * single-use artefact (a code, a refresh token) takes a fresh one; the sign-in is a whole browser
 * flow per iteration, with its own cookies, forms and PKCE.
 */

export interface Credentials {
  clientId: string;
  clientSecret: string;
}

interface Timing {
  /**
   * The servers' base URLs (127.0.0.1 only): one autocannon instance each, the connections split
   * evenly over them, all drawing on the same pools. One URL for a single process.
   */
  urls: string[];
  /** Connections in all, over every URL. */
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
}

export type LoadSpec = Timing &
  (
    | { kind: 'get'; path: string; bearer?: string }
    | { kind: 'introspect'; client: Credentials; token: string }
    | { kind: 'refresh'; client: Credentials; tokens: string[] }
    | { kind: 'code'; client: Credentials; codes: string[]; verifier: string; redirectUri: string }
    | {
        kind: 'sign-in';
        client: Credentials;
        customers: { username: string; password: string }[];
        redirectUri: string;
        scope: string;
      }
  );

/** Everything a run counts that is not a success: refused connections, timeouts, unexpected answers. */
export interface Failures {
  count: number;
  /** The first unexpected answer, to say why. */
  sample?: string;
}

/** Per-request observations beyond autocannon's own: successes that need a body check, and flows. */
export interface Observed {
  failures: Failures;
  /** Completed sign-in flows' durations in ms (flows only). */
  flowMs: number[];
}

type Request = autocannon.Request;
type Headers = Record<string, string | string[]>;

export function newObserved(): Observed {
  return { failures: { count: 0 }, flowMs: [] };
}

function fail(observed: Observed, what: string): void {
  observed.failures.count += 1;
  observed.failures.sample ??= what.slice(0, 300);
}

function basic(client: Credentials): string {
  const encode = (value: string) => encodeURIComponent(value);
  return `Basic ${Buffer.from(`${encode(client.clientId)}:${encode(client.clientSecret)}`).toString('base64')}`;
}

const FORM = 'application/x-www-form-urlencoded';

function post(
  path: string,
  client: Credentials | undefined,
  form: Record<string, string> | [string, string][],
): Partial<Request> {
  const headers: Record<string, string> = { 'content-type': FORM, accept: 'application/json' };
  if (client) headers.authorization = basic(client);
  return { method: 'POST', path, headers, body: new URLSearchParams(form).toString() };
}

/** Hands out single-use artefacts in order; an empty pool sends a dummy that fails visibly. */
function takeFrom(pool: string[], observed: Observed, what: string): string {
  const next = pool.shift();
  if (next !== undefined) return next;
  fail(observed, `${what} pool exhausted: the run outpaced the minted supply`);
  return 'pool-exhausted';
}

function singleRequests(spec: LoadSpec, observed: Observed): autocannon.Request[] {
  switch (spec.kind) {
    case 'get':
      return [
        {
          method: 'GET',
          path: spec.path,
          headers: spec.bearer ? { authorization: `Bearer ${spec.bearer}` } : {},
        },
      ];
    case 'introspect':
      return [
        post('/token/introspection', spec.client, { token: spec.token, token_type_hint: 'access_token' }),
      ] as Request[];
    case 'refresh': {
      // Every answer carries the rotated token, which goes back into the pool for a later request.
      const pool = spec.tokens;
      return [
        {
          setupRequest: (request: Request) => ({
            ...request,
            ...post('/token', spec.client, {
              grant_type: 'refresh_token',
              refresh_token: takeFrom(pool, observed, 'refresh token'),
            }),
          }),
          onResponse: (status: number, body: string) => {
            const rotated =
              status === 200 ? (JSON.parse(body) as { refresh_token?: string }).refresh_token : undefined;
            if (rotated) pool.push(rotated);
            else if (status === 200) fail(observed, 'refresh answered 200 without a refresh_token');
          },
        },
      ] as Request[];
    }
    case 'code': {
      const { codes, verifier, redirectUri } = spec;
      return [
        {
          setupRequest: (request: Request) => ({
            ...request,
            ...post('/token', spec.client, {
              grant_type: 'authorization_code',
              code: takeFrom(codes, observed, 'code'),
              redirect_uri: redirectUri,
              code_verifier: verifier,
            }),
          }),
        },
      ] as Request[];
    }
    case 'sign-in':
      return signInFlow(spec, observed);
  }
}

/* The sign-in flow: one fresh browser per iteration (context), eight requests. */

interface Browser {
  started: number;
  cookies: Record<string, string>;
  verifier: string;
  state: string;
  /** Where the previous answer sent the browser. */
  next: string;
  csrf: string;
  /** The accounts the consent screen offered ticked, which the browser allows as they are. */
  accounts: string[];
  code: string;
  broken: boolean;
}

function browserOf(context: object): Browser {
  return context as Browser;
}

function header(headers: Headers, name: string): string[] {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return Array.isArray(value) ? value : [value];
  }
  return [];
}

function keepCookies(browser: Browser, headers: Headers): void {
  for (const setCookie of header(headers, 'set-cookie')) {
    const [pair = ''] = setCookie.split(';');
    const at = pair.indexOf('=');
    const name = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    if (!value || /expires=Thu, 01 Jan 1970/i.test(setCookie)) delete browser.cookies[name];
    else browser.cookies[name] = value;
  }
}

function cookieHeader(browser: Browser): Record<string, string> {
  const cookie = Object.entries(browser.cookies)
    .map(([name, value]) => `${name}=${value}`)
    .join('; ');
  return cookie ? { cookie } : {};
}

function pathOf(location: string): string {
  const url = new URL(location, 'http://127.0.0.1');
  return `${url.pathname}${url.search}`;
}

type Check = (browser: Browser, status: number, body: string, headers: Headers) => string | undefined;

/** A redirect to somewhere containing `expected`; the browser follows it next. */
function redirectTo(expected: string): Check {
  return (browser, status, _body, headers) => {
    const [location] = header(headers, 'location');
    if (status < 300 || status > 399 || !location?.includes(expected)) {
      return `expected a redirect to ${expected}, got ${status} ${location ?? ''}`;
    }
    browser.next = location;
    return undefined;
  };
}

const formPage: Check = (browser, status, body) => {
  const csrf = /name="csrf" value="([^"]+)"/.exec(body)?.[1];
  if (status !== 200 || !csrf) return `expected a form, got ${status}: ${body.slice(0, 120)}`;
  browser.csrf = csrf;
  return undefined;
};

/** The consent screen, listing the customer's accounts from the bank API, as every reading app's does. */
const consentPage: Check = (browser, status, body, headers) => {
  const problem = formPage(browser, status, body, headers);
  if (problem) return problem;
  browser.accounts = [...body.matchAll(/name="account" value="([^"]+)"[^>]*checked/g)].map(
    ([, iban]) => iban ?? '',
  );
  return browser.accounts.length ? undefined : 'the consent screen listed no accounts: is the bank API up?';
};

function signInFlow(spec: Extract<LoadSpec, { kind: 'sign-in' }>, observed: Observed): Request[] {
  let flows = 0;
  const step = (build: (browser: Browser) => Partial<Request>, check: Check): Request =>
    ({
      setupRequest: (request: Request, context: object) => {
        const browser = browserOf(context);
        if (browser.broken) return undefined; // autocannon starts a fresh flow
        const built = build(browser);
        return { ...request, ...built, headers: { ...built.headers, ...cookieHeader(browser) } };
      },
      onResponse: (status: number, body: string, context: object, headers: Headers) => {
        const browser = browserOf(context);
        keepCookies(browser, headers);
        const problem = check(browser, status, body, headers);
        if (problem) {
          browser.broken = true;
          fail(observed, problem);
        }
      },
    }) as Request;

  const authorize = (browser: Browser): Partial<Request> => {
    browser.started = performance.now();
    browser.cookies = {};
    browser.broken = false;
    browser.accounts = [];
    browser.verifier = randomBytes(32).toString('base64url');
    browser.state = randomBytes(12).toString('base64url');
    const query = new URLSearchParams({
      client_id: spec.client.clientId,
      redirect_uri: spec.redirectUri,
      response_type: 'code',
      scope: spec.scope,
      code_challenge: createHash('sha256').update(browser.verifier).digest('base64url'),
      code_challenge_method: 'S256',
      state: browser.state,
      nonce: randomBytes(12).toString('base64url'),
      // offline_access is granted only with a consent screen, which is part of what is measured.
      prompt: 'consent',
    });
    return { method: 'GET', path: `/auth?${query.toString()}`, headers: {} };
  };
  const follow = (browser: Browser): Partial<Request> => ({
    method: 'GET',
    path: pathOf(browser.next),
    headers: {},
  });
  const submit =
    (action: string, fields: (browser: Browser) => [string, string][]) =>
    (browser: Browser): Partial<Request> =>
      post(`${pathOf(browser.next)}/${action}`, undefined, [['csrf', browser.csrf], ...fields(browser)]);
  const callback: Check = (browser, status, body, headers) => {
    const problem = redirectTo(spec.redirectUri)(browser, status, body, headers);
    if (problem) return problem;
    const url = new URL(browser.next);
    if (url.searchParams.get('state') !== browser.state) return 'callback state does not match';
    browser.code = url.searchParams.get('code') ?? '';
    return undefined;
  };
  const tokens: Check = (browser, status, body) => {
    if (status !== 200 || !body.includes('"refresh_token"')) return `token exchange: ${status} ${body}`;
    observed.flowMs.push(performance.now() - browser.started);
    return undefined;
  };

  return [
    step(authorize, redirectTo('/interaction/')),
    step(follow, formPage),
    step(
      submit('login', () => {
        const customer = spec.customers[flows++ % spec.customers.length];
        return [
          ['username', customer?.username ?? ''],
          ['password', customer?.password ?? ''],
        ];
      }),
      redirectTo('/auth/'),
    ),
    step(follow, redirectTo('/interaction/')),
    step(follow, consentPage),
    step(
      submit('consent', (browser) => [
        ['decision', 'allow'],
        ...browser.accounts.map((iban): [string, string] => ['account', iban]),
      ]),
      redirectTo('/auth/'),
    ),
    step(follow, callback),
    step(
      (browser) =>
        post('/token', spec.client, {
          grant_type: 'authorization_code',
          code: browser.code,
          redirect_uri: spec.redirectUri,
          code_verifier: browser.verifier,
        }),
      tokens,
    ),
  ];
}

export function requestsFor(spec: LoadSpec, observed: Observed): Request[] {
  return singleRequests(spec, observed);
}
