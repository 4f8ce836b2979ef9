import type { AccessToken, AuthorizationDetail } from './introspection.ts';
import { PaymentShapeError, readPayment, type PaymentFields } from './payment-request.ts';

/**
 * What makes an access token a payment token: issued for the bank API (its `aud` is the API's
 * public URL), with no scope, and exactly one `payment_initiation` authorization detail that reads
 * as a payment. Its power is that one payment and nothing else; anything else about it, a second
 * detail, a detail for another place, a member this bank does not understand, and it is no
 * payment token at all.
 */

const PAYMENT_INITIATION = 'payment_initiation';

/** RFC 9396 members that say where and how the detail applies, not what is paid. */
const COMMON_MEMBERS: ReadonlySet<string> = new Set(['type', 'locations', 'actions', 'identifier']);

export type PaymentAction = 'initiate' | 'status';

export interface ApprovedPayment {
  fields: PaymentFields;
  /** What the holder may do with it: without `actions` in the detail, both initiate and status. */
  may(action: PaymentAction): boolean;
}

/** Without `locations` the detail is for wherever the token is accepted; with it, it must name us. */
function isForUs(detail: AuthorizationDetail, publicUrl: string): boolean {
  if (detail.locations === undefined) return true;
  return detail.locations.some((location) => location === publicUrl || location === `${publicUrl}/payments`);
}

function paymentOf(detail: AuthorizationDetail): PaymentFields | undefined {
  try {
    return readPayment(detail, COMMON_MEMBERS);
  } catch (error) {
    if (error instanceof PaymentShapeError) return undefined;
    throw error;
  }
}

/** The payment the customer approved with this token, or undefined when it is not a payment token. */
export function approvedPayment(token: AccessToken, publicUrl: string): ApprovedPayment | undefined {
  if (token.audience !== publicUrl || token.scopes.size > 0) return undefined;
  const [detail, ...others] = token.authorizationDetails;
  if (!detail || others.length > 0 || detail.type !== PAYMENT_INITIATION) return undefined;
  if (!isForUs(detail, publicUrl)) return undefined;
  const fields = paymentOf(detail);
  if (!fields) return undefined;
  const { actions } = detail;
  return { fields, may: (action) => actions === undefined || actions.includes(action) };
}
