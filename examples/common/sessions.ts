import { randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * An example app's sessions: a random id in a cookie, everything else (tokens included) on the
 * server, so tokens never reach the browser. Each app says what else its sessions hold.
 *
 * EXAMPLE ONLY: this store is a Map in memory, so a restart forgets everyone and two instances
 * would not share it. A real app keeps sessions in a database or Redis, secrets encrypted at rest.
 */

interface SessionBasics {
  id: string;
  csrfToken: string;
  lastSeenAt: number;
}

/** A session: its id and CSRF token, and whatever the app has put in it so far. */
export type StoredSession<Data extends object> = SessionBasics & Partial<Data>;

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

export class SessionStore<Data extends object> {
  private readonly sessions = new Map<string, StoredSession<Data>>();
  private lastSweep = Date.now();

  /** The live session with this id, if any; using it keeps it alive. */
  find(id: string | undefined): StoredSession<Data> | undefined {
    this.forgetIdle();
    const session = id ? this.sessions.get(id) : undefined;
    if (session) session.lastSeenAt = Date.now();
    return session;
  }

  create(): StoredSession<Data> {
    // Every member of Partial<Data> is optional, which TypeScript cannot see for a generic Data.
    const basics: SessionBasics = { id: randomId(), csrfToken: randomId(), lastSeenAt: Date.now() };
    const session = basics as StoredSession<Data>;
    this.sessions.set(session.id, session);
    return session;
  }

  /**
   * The same session under a new id and CSRF token, the old id forgotten. Done whenever the
   * customer connects, so an id planted in their browser beforehand is worth nothing.
   */
  renew(session: StoredSession<Data>): StoredSession<Data> {
    this.sessions.delete(session.id);
    const renewed: StoredSession<Data> = {
      ...session,
      id: randomId(),
      csrfToken: randomId(),
      lastSeenAt: Date.now(),
    };
    this.sessions.set(renewed.id, renewed);
    return renewed;
  }

  /** Every session, for inspecting the example (and its tests). */
  list(): StoredSession<Data>[] {
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
