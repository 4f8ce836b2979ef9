import type Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context, Middleware } from 'koa';
import type { Knex } from '../db/knex.ts';
import type { Logger } from '../service/kit.ts';
import { insufficientScope, requireTwoFactors, schemeOf, type BankApiState, type Guard } from './auth.ts';
import { ApiError } from './errors.ts';
import type { AccessToken } from './introspection.ts';
import { bookPayment, findPayment, type Payment, type PaymentOutcome } from './ledger.ts';
import { formatAmount } from './money.ts';
import { differences, parsePaymentRequest, type PaymentFields } from './payment-request.ts';
import { approvedPayment, type ApprovedPayment } from './payment-tokens.ts';

/**
 * POST /payments and GET /payments/:id: a payment token pays exactly the payment the customer
 * approved, once. The body repeats that payment; any difference is refused with nothing booked.
 * An Idempotency-Key makes a retry safe: the same token, key and payment get the same payment back.
 */

export interface PaymentRouteDependencies {
  knex: Knex;
  log: Logger;
  guard: Guard;
  /** The bank API's public URL: the audience a payment token must name. */
  publicUrl: string;
}

// Room for a uuid or any key an app makes; nothing that would need escaping in a log or a header.
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,64}$/;

const NOT_A_PAYMENT_TOKEN = new ApiError(
  403,
  'payment_not_approved',
  'This needs a payment token: an access token for one payment_initiation the customer approved.',
);
const NOT_FOR_THIS_ACTION = new ApiError(
  403,
  'payment_not_approved',
  'The customer did not approve this action for this payment (its actions do not name it).',
);
const NO_SUCH_PAYMENT = new ApiError(404, 'not_found', 'No such payment.');

const PAYMENT_REFUSALS: Record<Exclude<PaymentOutcome, { ok: true }>['reason'], ApiError> = {
  account_not_found: new ApiError(
    403,
    'payment_not_approved',
    "The approved debtor account is not one of the customer's accounts.",
  ),
  currency_mismatch: new ApiError(
    400,
    'invalid_request',
    'The currency must be the currency of the account.',
  ),
  insufficient_funds: new ApiError(422, 'insufficient_funds', 'The account does not have enough money.'),
  unstorable_text: new ApiError(
    400,
    'invalid_request',
    'The payment contains characters that cannot be accepted.',
  ),
  token_used: new ApiError(
    409,
    'payment_token_used',
    'This payment token has been used; the customer must approve a new payment.',
  ),
};

function paymentJson(payment: Payment) {
  const { fields } = payment;
  return {
    id: payment.id,
    status: 'booked',
    instructedAmount: { currency: fields.currency, amount: formatAmount(fields.amountMinor) },
    creditorName: fields.creditorName,
    creditorAccount: { iban: fields.creditorIban },
    ...(fields.remittance === undefined ? {} : { remittanceInformationUnstructured: fields.remittance }),
    debtorAccount: { iban: fields.debtorIban },
    transaction_id: payment.transactionId,
    created_at: payment.createdAt.toISOString(),
  };
}

function idempotencyKey(ctx: Context): string {
  const key = ctx.get('idempotency-key');
  if (!key) throw new ApiError(400, 'invalid_request', 'Send an Idempotency-Key header with every payment.');
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new ApiError(
      400,
      'invalid_request',
      'The Idempotency-Key must be 1 to 64 visible ASCII characters.',
    );
  }
  return key;
}

function paymentToken(token: AccessToken, publicUrl: string): ApprovedPayment {
  const approved = approvedPayment(token, publicUrl);
  if (!approved) throw NOT_A_PAYMENT_TOKEN;
  return approved;
}

function requireApproved(approved: PaymentFields, requested: PaymentFields): void {
  const changed = differences(approved, requested);
  if (changed.length === 0) return;
  throw new ApiError(403, 'payment_not_approved', `Not what the customer approved: ${changed.join(', ')}.`);
}

function jsonBody(): Middleware {
  const json = bodyParser({ enableTypes: ['json'], jsonLimit: '16kb', jsonStrict: true });
  return async (ctx, next) => {
    if (!ctx.is('application/json')) {
      throw new ApiError(
        415,
        'invalid_request',
        'The request body must be JSON (Content-Type: application/json).',
      );
    }
    await json(ctx, next);
  };
}

export function paymentRoutes(router: Router<BankApiState>, dependencies: PaymentRouteDependencies): void {
  const { knex, log, guard, publicUrl } = dependencies;

  router.post(
    '/payments',
    guard.requireToken(),
    async (ctx, next) => {
      const approved = paymentToken(ctx.state.token, publicUrl);
      if (!approved.may('initiate')) throw NOT_FOR_THIS_ACTION;
      requireTwoFactors(ctx.state.token);
      idempotencyKey(ctx);
      await next();
    },
    jsonBody(),
    async (ctx) => {
      const { token } = ctx.state;
      const requested = parsePaymentRequest(ctx.request.body);
      requireApproved(paymentToken(token, publicUrl).fields, requested);
      const outcome = await bookPayment(knex, {
        customerId: token.customerId,
        clientId: token.clientId,
        tokenSha256: token.tokenSha256,
        idempotencyKey: idempotencyKey(ctx),
        fields: requested,
      });
      if (!outcome.ok) throw PAYMENT_REFUSALS[outcome.reason];
      const { payment, replayed } = outcome;
      log.info({ paymentId: payment.id, clientId: token.clientId, replayed }, 'payment booked');
      ctx.status = 201;
      ctx.body = { payment: paymentJson(payment) };
    },
  );

  // The payment token that booked a payment may read it (unless its actions leave out "status"),
  // and so may the same app with the customer's accounts:read; nobody else learns it exists.
  router.get('/payments/:id', guard.requireToken(), async (ctx) => {
    const { token } = ctx.state;
    const approved = approvedPayment(token, publicUrl);
    if (approved && !approved.may('status')) throw NOT_FOR_THIS_ACTION;
    if (!approved && !token.scopes.has('accounts:read'))
      throw insufficientScope('accounts:read', schemeOf(token));
    const payment = await findPayment(knex, {
      id: ctx.params.id ?? '',
      customerId: token.customerId,
      clientId: token.clientId,
      ...(approved ? { tokenSha256: token.tokenSha256 } : {}),
    });
    if (!payment) throw NO_SUCH_PAYMENT;
    ctx.body = { payment: paymentJson(payment) };
  });
}
