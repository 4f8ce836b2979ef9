import { randomBytes } from 'node:crypto';
import Router, { type RouterContext } from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import { findCustomerById } from '../customers/customers.ts';
import { recentEvents, recordEvent, requestOrigin } from '../audit/events.ts';
import { answerRefusal, type SignIn, type SignInStep } from '../sign-in/sign-in.ts';
import { pendingSignIn, verifiedPendingSignIn } from '../sign-in/pending.ts';
import { ACCOUNT_SIGN_IN_NONCE_COOKIE, CSRF_PURPOSES, csrfToken, isValidCsrfToken } from '../http/csrf.ts';
import { formBodies, formField } from '../http/forms.ts';
import { PageError } from '../http/errors.ts';
import { noStore } from '../http/security-headers.ts';
import { renderPage } from '../http/views.ts';
import {
  grantsOfCustomer,
  revokeGrants,
  sessionsOfCustomer,
  type CustomerGrant,
} from '../oidc/storage/grants-and-sessions.ts';
import { consentWordingFor } from '../oidc/scopes.ts';
import { behindSignIn, type BankSession, type BankSessions, type SignedInSession } from './bank-session.ts';
import { describeActivity, describeDevice, describeOrigin, formatWhen } from './present.ts';
import { AccountsUnavailable, type LookUpAccounts } from '../payments/account-lookup.ts';
import { groupedIban } from '../payments/iban.ts';
import { readsAccounts } from '../oidc/account-information.ts';

/**
 * The customer's own pages at /account: the apps they have connected and can cut off, the
 * sessions they have open and can end, and what has happened lately. Behind the bank session.
 */

export interface AccountDependencies {
  provider: Provider;
  knex: Knex;
  cookieKeys: string[];
  sessions: BankSessions;
  signIn: SignIn;
  /** The customer's accounts from the bank API, to name the ones each app sees. */
  lookUpAccounts: LookUpAccounts;
}

const CSRF_PURPOSE = CSRF_PURPOSES.account;
const SIGN_IN_CSRF_PURPOSE = CSRF_PURPOSES.accountSignIn;
/** Binds the sign-in form's CSRF token to this browser before there is any session to bind it to. */
const SIGN_IN_NONCE_COOKIE = ACCOUNT_SIGN_IN_NONCE_COOKIE;

interface ConnectedApp {
  clientId: string;
  name: string;
  permissions: string[];
  /** The accounts the customer let it read, by name and IBAN as the screen shows them. */
  accounts: string[];
  readsAccounts: boolean;
  grantedAt: string;
  lastUsedAt: string;
}

/** "Everyday (NL91 ABNA 0417 1643 00)"; the IBAN alone when the bank cannot name it now. */
type AccountLabel = (iban: string) => string;

/** One entry per app, however many times the customer consented to it. */
function connectedApps(
  grants: CustomerGrant[],
  appName: (clientId: string) => string,
  accountLabel: AccountLabel,
): ConnectedApp[] {
  const byClient = new Map<string, CustomerGrant[]>();
  for (const grant of grants) byClient.set(grant.clientId, [...(byClient.get(grant.clientId) ?? []), grant]);
  return [...byClient].map(([clientId, appGrants]) => {
    const scopes = new Set(appGrants.flatMap((grant) => grant.scope.split(' ')));
    const firstGranted = Math.min(...appGrants.map((grant) => grant.grantedAt.getTime()));
    const lastUsed = Math.max(0, ...appGrants.map((grant) => grant.lastUsedAt?.getTime() ?? 0));
    return {
      clientId,
      name: appName(clientId),
      permissions: consentWordingFor(scopes),
      accounts: [...new Set(appGrants.flatMap((grant) => grant.accounts))].map(accountLabel),
      readsAccounts: readsAccounts(scopes),
      grantedAt: formatWhen(new Date(firstGranted)),
      lastUsedAt: lastUsed ? formatWhen(new Date(lastUsed)) : 'Not yet',
    };
  });
}

export function accountRouter({
  provider,
  knex,
  cookieKeys,
  sessions,
  signIn,
  lookUpAccounts,
}: AccountDependencies): Router {
  const router = new Router();
  const forms = formBodies();

  /** Names for the accounts apps see; asked of the bank API only when some app sees one. */
  async function accountLabels(customerId: string, grants: CustomerGrant[]): Promise<AccountLabel> {
    const names = new Map<string, string>();
    if (grants.some((grant) => grant.accounts.length > 0)) {
      try {
        for (const account of await lookUpAccounts(customerId)) names.set(account.iban, account.name);
      } catch (error) {
        if (!(error instanceof AccountsUnavailable)) throw error;
      }
    }
    return (iban) => {
      const name = names.get(iban);
      return name ? `${name} (${groupedIban(iban)})` : groupedIban(iban);
    };
  }

  async function appNames(clientIds: Iterable<string>): Promise<(clientId: string) => string> {
    const names = new Map<string, string>();
    for (const clientId of new Set(clientIds)) {
      const client = await provider.Client.find(clientId);
      names.set(clientId, client?.clientName ?? 'A removed app');
    }
    return (clientId) => names.get(clientId) ?? 'An app';
  }

  const signedIn = (handler: (ctx: RouterContext, session: SignedInSession) => Promise<void>) =>
    behindSignIn(sessions, handler);

  function requireCsrf(ctx: Context, session: BankSession): void {
    if (!isValidCsrfToken(cookieKeys, CSRF_PURPOSE, session.uid, formField(ctx, 'csrf'))) {
      throw new PageError(403, 'csrf_failed');
    }
  }

  function signInNonce(ctx: Context): string {
    const existing = ctx.cookies.get(SIGN_IN_NONCE_COOKIE, { signed: true });
    if (existing) return existing;
    const nonce = randomBytes(16).toString('base64url');
    ctx.cookies.set(SIGN_IN_NONCE_COOKIE, nonce, {
      httpOnly: true,
      sameSite: 'lax',
      signed: true,
      secure: ctx.secure,
      path: '/account',
    });
    return nonce;
  }

  function showSignIn(ctx: Context, error?: string, status?: number): void {
    renderPage(
      ctx,
      'login',
      {
        title: 'Sign in',
        action: '/account/sign-in',
        csrf: csrfToken(cookieKeys, SIGN_IN_CSRF_PURPOSE, signInNonce(ctx)),
        lead: 'to manage your connected apps and sessions',
        username: formField(ctx, 'username'),
        error,
      },
      status,
    );
  }

  function backToAccount(ctx: Context): void {
    ctx.status = 303;
    ctx.redirect('/account');
  }

  router.use('/account', noStore());

  router.get('/', backToAccount);

  router.get('/account/sign-in', async (ctx) => {
    if (await sessions.current(ctx)) return backToAccount(ctx);
    showSignIn(ctx);
  });

  /** The sign-in form's nonce, after checking that the form came from this browser's page. */
  function signInFormNonce(ctx: Context): string {
    const nonce = ctx.cookies.get(SIGN_IN_NONCE_COOKIE, { signed: true });
    if (!nonce || !isValidCsrfToken(cookieKeys, SIGN_IN_CSRF_PURPOSE, nonce, formField(ctx, 'csrf'))) {
      throw new PageError(403, 'csrf_failed');
    }
    return nonce;
  }

  function showCode(ctx: Context, pending: string, error?: string, status?: number): void {
    renderPage(
      ctx,
      'second-factor',
      {
        title: 'Enter your code',
        action: '/account/sign-in/code',
        csrf: csrfToken(cookieKeys, SIGN_IN_CSRF_PURPOSE, signInNonce(ctx)),
        pending,
        lead: 'Two-step verification is on for your account: enter a code to continue.',
        error,
      },
      status,
    );
  }

  async function startSession(ctx: Context, step: SignInStep & { kind: 'signed_in' }): Promise<void> {
    const session = await sessions.signIn(ctx, step.customerId, step.amr);
    await recordEvent(knex, {
      customerId: step.customerId,
      type: 'sign_in_succeeded',
      ...requestOrigin(ctx),
      detail: { session: session.uid },
    });
    if (step.recoveryCodesLeft === undefined) return backToAccount(ctx);
    renderPage(ctx, 'recovery-codes-left', {
      title: 'Recovery code used',
      remaining: step.recoveryCodesLeft,
      continueTo: '/account',
    });
  }

  router.post('/account/sign-in', forms, async (ctx) => {
    const nonce = signInFormNonce(ctx);
    const step = await signIn.withPassword({
      username: formField(ctx, 'username'),
      password: formField(ctx, 'password'),
      origin: requestOrigin(ctx),
    });
    if (step.kind === 'refused') {
      const { error, status } = answerRefusal(ctx, step);
      return showSignIn(ctx, error, status);
    }
    if (step.kind === 'code_needed') return showCode(ctx, pendingSignIn(cookieKeys, nonce, step.customerId));
    await startSession(ctx, step);
  });

  router.post('/account/sign-in/code', forms, async (ctx) => {
    const nonce = signInFormNonce(ctx);
    const pending = formField(ctx, 'pending');
    const customerId = verifiedPendingSignIn(cookieKeys, nonce, pending);
    if (!customerId) throw new PageError(400, 'session_not_found');
    const step = await signIn.withCode({
      customerId,
      code: formField(ctx, 'code'),
      origin: requestOrigin(ctx),
    });
    if (step.kind === 'refused') {
      const { error, status } = answerRefusal(ctx, step);
      return showCode(ctx, pending, error, status);
    }
    if (step.kind !== 'signed_in') throw new PageError(400, 'session_not_found');
    await startSession(ctx, step);
  });

  router.get(
    '/account',
    signedIn(async (ctx, session) => {
      const customerId = session.accountId;
      const [customer, grants, openSessions, events] = await Promise.all([
        findCustomerById(knex, customerId),
        grantsOfCustomer(knex, customerId),
        sessionsOfCustomer(knex, customerId),
        recentEvents(knex, customerId, 100),
      ]);
      const appName = await appNames([
        ...grants.map((grant) => grant.clientId),
        ...events.flatMap((event) => (event.client_id ? [event.client_id] : [])),
      ]);
      const signIns = new Map(
        events
          .filter((event) => event.type === 'sign_in_succeeded' && typeof event.detail.session === 'string')
          .map((event) => [String(event.detail.session), event]),
      );
      renderPage(ctx, 'account', {
        title: 'Your account',
        wide: true,
        customerName: customer?.name ?? customer?.username,
        csrf: csrfToken(cookieKeys, CSRF_PURPOSE, session.uid),
        apps: connectedApps(grants, appName, await accountLabels(customerId, grants)),
        sessions: openSessions.map((open) => ({
          uid: open.uid,
          current: open.uid === session.uid,
          device: describeDevice(signIns.get(open.uid)?.user_agent),
          ip: signIns.get(open.uid)?.ip ?? 'unknown address',
          signedInAt: formatWhen(open.signedInAt),
        })),
        activity: events.slice(0, 25).map((event) => ({
          when: formatWhen(event.created_at),
          what: describeActivity(event, appName),
          where: describeOrigin(event),
        })),
      });
    }),
  );

  router.post(
    '/account/apps/:clientId/revoke',
    forms,
    signedIn(async (ctx, session) => {
      requireCsrf(ctx, session);
      const clientId = ctx.params.clientId ?? '';
      const grants = (await grantsOfCustomer(knex, session.accountId)).filter(
        (grant) => grant.clientId === clientId,
      );
      if (grants.length === 0) throw new PageError(404, 'not_found');
      await revokeGrants(
        knex,
        grants.map((grant) => grant.grantId),
      );
      await recordEvent(knex, {
        customerId: session.accountId,
        type: 'app_revoked',
        clientId,
        ...requestOrigin(ctx),
      });
      backToAccount(ctx);
    }),
  );

  router.post(
    '/account/sessions/:uid/sign-out',
    forms,
    signedIn(async (ctx, session) => {
      requireCsrf(ctx, session);
      const other = await sessions.findByUid(ctx.params.uid ?? '');
      if (!other || other.accountId !== session.accountId || other.uid === session.uid) {
        throw new PageError(404, 'not_found');
      }
      await sessions.end(other);
      await recordEvent(knex, {
        customerId: session.accountId,
        type: 'session_ended',
        ...requestOrigin(ctx),
      });
      backToAccount(ctx);
    }),
  );

  router.post(
    '/account/sessions/sign-out-others',
    forms,
    signedIn(async (ctx, session) => {
      requireCsrf(ctx, session);
      for (const open of await sessionsOfCustomer(knex, session.accountId)) {
        if (open.uid === session.uid) continue;
        const other = await sessions.findByUid(open.uid);
        if (other) await sessions.end(other);
      }
      await recordEvent(knex, {
        customerId: session.accountId,
        type: 'session_ended',
        ...requestOrigin(ctx),
      });
      backToAccount(ctx);
    }),
  );

  router.post(
    '/account/sign-out',
    forms,
    signedIn(async (ctx, session) => {
      requireCsrf(ctx, session);
      await sessions.end(session);
      sessions.forgetCookie(ctx);
      await recordEvent(knex, { customerId: session.accountId, type: 'signed_out', ...requestOrigin(ctx) });
      renderPage(ctx, 'signed-out', { title: 'Signed out' });
    }),
  );

  return router;
}
