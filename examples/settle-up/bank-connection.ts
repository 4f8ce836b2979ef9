import { randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import { discoverOnce } from '../common/discovery.ts';
import type { SettleUpConfig } from './config.ts';
import { approvedPayment, authorizationDetailFor, type ApprovedPayment, type Debt } from './debt.ts';

/**
 * Everything Settle Up does with the bank, through openid-client, as FAPI 2.0 asks: discovery,
 * client authentication with Settle Up's own key (private_key_jwt), a pushed authorization
 * request (PAR) carrying the payment as a rich authorization request, PKCE, DPoP-bound tokens
 * with a fresh DPoP key per payment, and booking the approved payment exactly once with an
 * Idempotency-Key. Read this file to learn the integration.
 */

/** What one payment attempt needs between the redirect to the bank and the callback. */
export interface PendingPayment {
  state: string;
  codeVerifier: string;
  /** Proof of possession of this payment's own DPoP key pair; the tokens are bound to it. */
  dpop: oidc.DPoPHandle;
  /** Made before the first attempt to book, so that a retry is recognised as the same payment. */
  idempotencyKey: string;
  debt: Debt;
}

/** The customer said no (or cancelled) on the bank's pages. */
export class PaymentDeclinedError extends Error {
  override name = 'PaymentDeclinedError';
}

/** The bank approved something other than the payment Settle Up asked for; nothing is booked. */
export class UnexpectedApprovalError extends Error {
  override name = 'UnexpectedApprovalError';
}

/** The bank could not be reached or kept failing; whether it booked the payment is unknown. */
export class BankUnavailableError extends Error {
  override name = 'BankUnavailableError';
}

export interface BookedPayment {
  id: string;
  status: string;
  approved: ApprovedPayment;
}

/** The bank answered, and it was not a booking: its HTTP status and error code. */
export interface RefusedPayment {
  status: number;
  error: string;
}

export type BookingOutcome = { booked: BookedPayment } | { refused: RefusedPayment };

type Attempt = { response: Response } | { refused: RefusedPayment } | { lost: string };

export interface Approval {
  /** DPoP-bound, good for this one payment; used once and then forgotten. */
  accessToken: string;
  approved: ApprovedPayment;
}

export interface BankConnection {
  start(debt: Debt): Promise<{ url: URL; pending: PendingPayment }>;
  finish(callbackUrl: URL, pending: PendingPayment): Promise<Approval>;
  book(approval: Approval, pending: PendingPayment): Promise<BookingOutcome>;
}

/** The booking request's body: the approved payment's own members, nothing about where or how. */
function paymentBody(approved: ApprovedPayment): string {
  const {
    instructedAmount,
    creditorName,
    creditorAccount,
    remittanceInformationUnstructured,
    debtorAccount,
  } = approved;
  return JSON.stringify({
    instructedAmount,
    creditorName,
    creditorAccount,
    ...(remittanceInformationUnstructured === undefined ? {} : { remittanceInformationUnstructured }),
    debtorAccount,
  });
}

async function errorCodeOf(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { error?: unknown };
    return typeof body.error === 'string' ? body.error : 'no error code';
  } catch {
    return 'no error code';
  }
}

async function outcomeOf(response: Response, approved: ApprovedPayment): Promise<BookingOutcome> {
  if (response.status !== 201)
    return { refused: { status: response.status, error: await errorCodeOf(response) } };
  const { payment } = (await response.json()) as { payment?: { id?: unknown; status?: unknown } };
  if (typeof payment?.id !== 'string' || typeof payment.status !== 'string') {
    return { refused: { status: response.status, error: 'unreadable answer' } };
  }
  return { booked: { id: payment.id, status: payment.status, approved } };
}

export function bankConnection(config: SettleUpConfig, privateKey: oidc.PrivateKey): BankConnection {
  const redirectUri = `${config.baseUrl}/callback`;
  const paymentsUrl = new URL(`${config.bankApiUrl}/payments`);
  // private_key_jwt: each request to the bank carries an assertion signed with Settle Up's key,
  // its audience the issuer (openid-client's default, as FAPI 2.0 asks).
  const configuration = discoverOnce(config.issuer, config.clientId, oidc.PrivateKeyJwt(privateKey));

  /** One attempt to book: the bank's answer, or why there was none. */
  async function attempt(
    settings: oidc.Configuration,
    approval: Approval,
    pending: PendingPayment,
  ): Promise<Attempt> {
    const headers = new Headers({
      'content-type': 'application/json',
      'idempotency-key': pending.idempotencyKey,
    });
    try {
      const response = await oidc.fetchProtectedResource(
        settings,
        approval.accessToken,
        paymentsUrl,
        'POST',
        paymentBody(approval.approved),
        headers,
        { DPoP: pending.dpop },
      );
      return { response };
    } catch (error) {
      // 401/403 with a challenge: the bank's answer, not a failure to reach it.
      if (error instanceof oidc.WWWAuthenticateChallengeError) {
        return {
          refused: { status: error.status, error: error.cause[0]?.parameters.error ?? 'no error code' },
        };
      }
      return { lost: (error as Error).message };
    }
  }

  function worthRetrying(result: Attempt): boolean {
    return 'lost' in result || ('response' in result && result.response.status >= 500);
  }

  return {
    async start(debt) {
      const settings = await configuration();
      const pending: PendingPayment = {
        state: oidc.randomState(),
        codeVerifier: oidc.randomPKCECodeVerifier(),
        dpop: oidc.getDPoPHandle(settings, await oidc.randomDPoPKeyPair('ES256')),
        idempotencyKey: randomUUID(),
        debt,
      };
      // The request travels to the bank directly (PAR), signed by our key and bound to our DPoP
      // key; the browser only carries its request_uri.
      const url = await oidc.buildAuthorizationUrlWithPAR(
        settings,
        {
          redirect_uri: redirectUri,
          scope: 'openid',
          state: pending.state,
          code_challenge: await oidc.calculatePKCECodeChallenge(pending.codeVerifier),
          code_challenge_method: 'S256',
          authorization_details: JSON.stringify(authorizationDetailFor(debt)),
        },
        { DPoP: pending.dpop },
      );
      return { url, pending };
    },

    async finish(callbackUrl, pending) {
      let tokens;
      try {
        // Checks state, iss, and exchanges the code with the PKCE verifier and a DPoP proof.
        tokens = await oidc.authorizationCodeGrant(
          await configuration(),
          callbackUrl,
          { pkceCodeVerifier: pending.codeVerifier, expectedState: pending.state },
          undefined,
          { DPoP: pending.dpop },
        );
      } catch (error) {
        if (error instanceof oidc.AuthorizationResponseError && error.error === 'access_denied') {
          throw new PaymentDeclinedError('the customer did not approve the payment');
        }
        throw error;
      }
      const approved = approvedPayment(tokens.authorization_details, pending.debt.payment);
      if (!approved) throw new UnexpectedApprovalError('the bank approved a different payment');
      return { accessToken: tokens.access_token, approved };
    },

    async book(approval, pending) {
      const settings = await configuration();
      // A lost answer is retried once with the same Idempotency-Key: the bank books it at most once.
      let result = await attempt(settings, approval, pending);
      if (worthRetrying(result)) {
        if ('response' in result) await result.response.body?.cancel();
        result = await attempt(settings, approval, pending);
      }
      if ('refused' in result) return result;
      if ('lost' in result) throw new BankUnavailableError(`no answer: ${result.lost}`);
      const { response } = result;
      if (response.status >= 500) throw new BankUnavailableError(`the bank answered HTTP ${response.status}`);
      return outcomeOf(response, approval.approved);
    },
  };
}
