import { randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Budget Buddy's sessions: a random id in a cookie, everything else (tokens included) on the
 * server. Tokens never reach the browser.
 *
 * EXAMPLE ONLY: this store is a Map in memory, so a restart disconnects everyone and two
 * instances would not share it. A real app keeps sessions in a database or Redis, and its
 * refresh tokens encrypted at rest.
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

export interface Session {
  id: string;
  csrfToken: string;
  lastSeenAt: number;
  pending?: PendingAuthorization;
  connection?: BankConnection;
  notice?: Notice;
  /** The refresh in progress, shared by every request of this session (see bank.ts). */
  refreshing?: Promise<BankConnection>;
}

const IDLE_LIMIT_MS = 12 * 60 * 60 * 1000;
const SWEEP_EVERY_MS = 60 * 1000;

function randomId(): string {
  return randomBytes(32).toString('base64url');
}

export function sameSecret(expected: string, presented: unknown): boolean {
  if (typeof presented !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private lastSweep = Date.now();

  /** The live session with this id, if any; using it keeps it alive. */
  find(id: string | undefined): Session | undefined {
    this.forgetIdle();
    const session = id ? this.sessions.get(id) : undefined;
    if (session) session.lastSeenAt = Date.now();
    return session;
  }

  create(): Session {
    const session: Session = { id: randomId(), csrfToken: randomId(), lastSeenAt: Date.now() };
    this.sessions.set(session.id, session);
    return session;
  }

  /**
   * The same session under a new id and CSRF token, the old id forgotten. Done whenever the
   * customer connects, so an id planted in their browser beforehand is worth nothing.
   */
  renew(session: Session): Session {
    this.sessions.delete(session.id);
    const renewed: Session = { ...session, id: randomId(), csrfToken: randomId(), lastSeenAt: Date.now() };
    this.sessions.set(renewed.id, renewed);
    return renewed;
  }

  /** Every session, for inspecting the example (and its tests). */
  list(): Session[] {
    return [...this.sessions.values()];
  }

  private forgetIdle(): void {
    if (Date.now() - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = Date.now();
    const cutoff = Date.now() - IDLE_LIMIT_MS;
    for (const [id, session] of this.sessions) {
      if (session.lastSeenAt < cutoff) this.sessions.delete(id);
    }
  }
}
