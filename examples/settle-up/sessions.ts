import { SessionStore as ExampleSessionStore, type StoredSession } from '../common/sessions.ts';
import type { BookedPayment, PendingPayment } from './bank-connection.ts';

/**
 * What Settle Up keeps in a customer's server-side session (see ../common/sessions.ts): the
 * payment on its way through the bank (PKCE verifier, state, DPoP key, Idempotency-Key) and,
 * once booked, the receipt that settles the debt. Never an access token: that one is used for
 * its one payment and forgotten.
 */

interface SettleUpSession {
  pending: PendingPayment;
  settlement: BookedPayment;
}

export type Session = StoredSession<SettleUpSession>;

export class SessionStore extends ExampleSessionStore<SettleUpSession> {}
