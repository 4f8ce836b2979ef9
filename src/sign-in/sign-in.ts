import type { Knex } from '../db/knex.ts';
import type { AuditRecorder, RequestOrigin } from '../audit/events.ts';
import { verifyCredentials } from '../customers/customers.ts';

/**
 * The one way a customer signs in, whichever door they use: an app's sign-in screen
 * (src/interactions/) or the bank's own account pages (src/account-pages/). It owns the password
 * check, what the customer is told when it fails, and what a failure leaves in their activity.
 * Account security (throttling, second factors) grows here, so that both doors get it at once.
 */

export interface SignInAttempt {
  username: string;
  password: string;
  /** The app the customer is signing in for; unset on the account pages. */
  clientId?: string | undefined;
  origin: RequestOrigin;
}

export type SignInOutcome =
  | {
      ok: true;
      customerId: string;
      /** How the customer proved who they are (RFC 8176 values). */
      amr: string[];
    }
  | {
      ok: false;
      /** The HTTP status the form answers with. */
      status: number;
      /** One sentence for the customer; the same for an unknown name and a wrong password. */
      message: string;
    };

const WRONG_CREDENTIALS = 'The username or password is not right.';

export type SignIn = (attempt: SignInAttempt) => Promise<SignInOutcome>;

export function passwordSignIn(knex: Knex, audit: AuditRecorder): SignIn {
  return async ({ username, password, clientId, origin }) => {
    const check = await verifyCredentials(knex, username, password);
    if (check.verified) return { ok: true, customerId: check.customerId, amr: ['pwd'] };
    // Recorded off the request path: the answer for a real customer's name must not take longer
    // than the answer for an unknown one. Unknown names are not recorded.
    if (check.knownCustomerId) {
      audit.record({ customerId: check.knownCustomerId, type: 'sign_in_failed', clientId, ...origin });
    }
    return { ok: false, status: 401, message: WRONG_CREDENTIALS };
  };
}
