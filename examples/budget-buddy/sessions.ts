import { SessionStore as ExampleSessionStore, type StoredSession } from '../common/sessions.ts';

/**
 * What Budget Buddy keeps in a customer's server-side session (see ../common/sessions.ts): the
 * authorization in progress and the bank connection's tokens, which never reach the browser.
 * Example-only shortcut: refresh tokens are kept in memory, not encrypted at rest.
 */

export interface PendingAuthorization {
  state: string;
  nonce: string;
  codeVerifier: string;
}

export interface BankConnection {
  accessToken: string;
  refreshToken: string | undefined;
  /** Milliseconds since the epoch at which the access token stops working. */
  expiresAt: number;
  /** The customer's name at the bank, from UserInfo. */
  name: string | undefined;
}

/** What the next page says once: why the customer is not connected any more, for instance. */
export type Notice = 'disconnected' | 'connection_ended' | 'not_allowed' | 'sign_in_failed';

interface BudgetBuddySession {
  pending: PendingAuthorization;
  connection: BankConnection;
  notice: Notice;
  /** The refresh in progress, shared by every request of this session (see bank-api.ts). */
  refreshing: Promise<BankConnection>;
}

export type Session = StoredSession<BudgetBuddySession>;

export class SessionStore extends ExampleSessionStore<BudgetBuddySession> {}
