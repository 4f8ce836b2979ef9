import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';

/**
 * A stand-in for the bank while its FAPI 2.0 side is not built yet: discovery, PAR, the token
 * endpoint and POST /payments, on one port, recording what an app sends. It checks what the
 * app must get right (its client assertion, PKCE, the DPoP header) and answers the payments
 * endpoint as each test scripts it. It is no authorization server: no customer, no consent.
 */

export interface Recorded {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type PaymentAnswer = { status: number; body?: unknown; challenge?: string } | 'hang-up';

export interface FakePaymentBank {
  issuer: string;
  requests: Recorded[];
  /** What POST /payments answers, one entry per request; the last one repeats. */
  paymentAnswers: PaymentAnswer[];
  /** What the token response says the customer approved. */
  approvedDetails: unknown;
  close(): Promise<void>;
}

export const REQUEST_URI = 'urn:ietf:params:oauth:request_uri:fake';
export const ACCESS_TOKEN = 'fake-dpop-bound-access-token';

function json(res: http.ServerResponse, status: number, body: unknown, challenge?: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    ...(challenge ? { 'www-authenticate': challenge } : {}),
  });
  res.end(JSON.stringify(body));
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The DPoP proof's key thumbprint: which key pair the app proved possession of. */
export async function dpopKeyOf(recorded: Recorded): Promise<string> {
  const proof = recorded.headers.dpop;
  if (typeof proof !== 'string') throw new Error(`no DPoP proof on ${recorded.path}`);
  const { jwk } = decodeProtectedHeader(proof);
  if (!jwk) throw new Error('DPoP proof without its jwk');
  return calculateJwkThumbprint(jwk);
}

export async function startFakePaymentBank(appJwks: { keys: JWK[] }): Promise<FakePaymentBank> {
  const keys = createLocalJWKSet(appJwks);
  let challenge: string | undefined;
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const bank: FakePaymentBank = {
    issuer,
    requests: [],
    paymentAnswers: [{ status: 201 }],
    approvedDetails: [],
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };

  async function clientAuthenticated(body: URLSearchParams): Promise<boolean> {
    try {
      await jwtVerify(body.get('client_assertion') ?? '', keys, {
        audience: issuer,
        issuer: body.get('client_id') ?? '',
      });
      return true;
    } catch {
      return false;
    }
  }

  async function answer(req: http.IncomingMessage, res: http.ServerResponse, recorded: Recorded) {
    const form = new URLSearchParams(recorded.body);
    if (recorded.path === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/auth`,
        token_endpoint: `${issuer}/token`,
        pushed_authorization_request_endpoint: `${issuer}/par`,
        require_pushed_authorization_requests: true,
        authorization_response_iss_parameter_supported: true,
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
        dpop_signing_alg_values_supported: ['ES256'],
      });
    }
    if (recorded.path === '/par' || recorded.path === '/token') {
      if (!(await clientAuthenticated(form)) || !req.headers.dpop)
        return json(res, 401, { error: 'invalid_client' });
    }
    if (recorded.path === '/par') {
      challenge = form.get('code_challenge') ?? undefined;
      return json(res, 201, { request_uri: REQUEST_URI, expires_in: 60 });
    }
    if (recorded.path === '/token') {
      const verifier = createHash('sha256')
        .update(form.get('code_verifier') ?? '')
        .digest('base64url');
      if (verifier !== challenge) return json(res, 400, { error: 'invalid_grant' });
      return json(res, 200, {
        access_token: ACCESS_TOKEN,
        token_type: 'DPoP',
        expires_in: 60,
        authorization_details: bank.approvedDetails,
      });
    }
    if (recorded.path === '/payments') {
      const attempt = bank.requests.filter((request) => request.path === '/payments').length - 1;
      const scripted = bank.paymentAnswers[Math.min(attempt, bank.paymentAnswers.length - 1)];
      if (scripted === 'hang-up') return req.socket.destroy();
      return json(res, scripted?.status ?? 500, scripted?.body ?? {}, scripted?.challenge);
    }
    json(res, 404, { error: 'not_found' });
  }

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    void readBody(req).then(async (body) => {
      const recorded = { path: new URL(req.url ?? '/', issuer).pathname, headers: req.headers, body };
      bank.requests.push(recorded);
      await answer(req, res, recorded);
    });
  });
  return bank;
}
