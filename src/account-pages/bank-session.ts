import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Lifetimes } from '../config.ts';
import type { Knex } from '../db/knex.ts';
import { afterCommit } from '../db/request-transaction.ts';
import type { Logger } from '../log.ts';
import { revokeTokensOfGrant } from '../oidc/storage/grants-and-sessions.ts';
import { sessionTtl } from '../oidc/provider.ts';
import {
  loadSession,
  logoutTokenRecipient,
  sessionCookie,
  signInSession,
  type EngineSession,
} from '../oidc/engine-internals.ts';
import { sendLogoutToken } from '../oidc/backchannel-logout.ts';

/**
 * The customer's bank session, as the account pages see it. It is oidc-provider's Session (a
 * row in oidc_models; the browser holds only its random id in a signed cookie), so signing in
 * here also signs the customer in for apps, and signing out here signs them out everywhere.
 */

export type BankSession = EngineSession;

/** A bank session a customer is signed in to. */
export type SignedInSession = BankSession & { accountId: string };

/** The signed-in session behind this request, or undefined; its idle window slides forward. */
export async function signedInSession(
  sessions: BankSessions,
  ctx: Context,
): Promise<SignedInSession | undefined> {
  const session = await sessions.current(ctx);
  return session?.accountId ? (session as SignedInSession) : undefined;
}

/** Runs a page's handler with the signed-in session; without one, sends the browser to sign in. */
export function behindSignIn<C extends Context>(
  sessions: BankSessions,
  handler: (ctx: C, session: SignedInSession) => Promise<void>,
): (ctx: C) => Promise<void> {
  return async (ctx) => {
    const session = await signedInSession(sessions, ctx);
    if (!session) {
      ctx.status = 303;
      ctx.redirect('/account/sign-in');
      return;
    }
    await handler(ctx, session);
  };
}

export interface BankSessions {
  /** The signed-in session behind this request, its idle window slid forward; undefined if none. */
  current(ctx: Context): Promise<BankSession | undefined>;
  /** Starts a session for a customer who has just proved who they are; replaces any other. */
  signIn(ctx: Context, customerId: string, amr: string[]): Promise<BankSession>;
  /**
   * Ends a session: ends its apps' session-bound tokens, deletes it, and once that is committed
   * tells its apps (back-channel logout), so that no transaction waits on an app's answer.
   */
  end(session: BankSession): Promise<void>;
  /** Tells the browser to forget the session cookie. */
  forgetCookie(ctx: Context): void;
  findByUid(uid: string): Promise<BankSession | undefined>;
}

export function bankSessions(
  provider: Provider,
  knex: Knex,
  lifetimes: Lifetimes,
  log: Logger,
): BankSessions {
  const cookie = sessionCookie(provider);

  async function save(ctx: Context, session: BankSession): Promise<void> {
    await session.save(sessionTtl(lifetimes, session));
    cookie.write(ctx, session);
  }

  async function notifyApps(session: BankSession): Promise<void> {
    const accountId = session.accountId;
    if (!accountId) return;
    await Promise.all(
      Object.keys(session.authorizations ?? {}).map(async (clientId) => {
        const client = await logoutTokenRecipient(provider, clientId);
        if (!client?.backchannelLogoutUri) return;
        // Logged and counted there; the sign-out goes on whatever the app answers.
        await sendLogoutToken(client, accountId, session.sidFor(clientId), log);
      }),
    );
  }

  async function endSessionBoundTokens(session: BankSession): Promise<void> {
    for (const authorization of Object.values(session.authorizations ?? {})) {
      // Apps with offline access keep their refresh tokens; the customer revokes those on the account pages.
      if (authorization.grantId && !authorization.persistsLogout) {
        await revokeTokensOfGrant(knex, authorization.grantId);
      }
    }
  }

  return {
    async current(ctx) {
      const session = await loadSession(provider, ctx);
      if (!session.accountId) return undefined;
      await save(ctx, session);
      return session;
    },

    async signIn(ctx, customerId, amr) {
      let session = await loadSession(provider, ctx);
      if (session.accountId && session.accountId !== customerId) {
        await this.end(session);
        session = new provider.Session();
      }
      signInSession(session, customerId, amr);
      await save(ctx, session);
      return session;
    },

    async end(session) {
      await endSessionBoundTokens(session);
      await session.destroy();
      await afterCommit(knex, () => notifyApps(session));
    },

    forgetCookie(ctx) {
      cookie.forget(ctx);
    },

    findByUid(uid) {
      return provider.Session.findByUid(uid);
    },
  };
}
