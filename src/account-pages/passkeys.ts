import Router, { type RouterContext } from '@koa/router';
import type { Context } from 'koa';
import type { Knex } from '../db/knex.ts';
import { findCustomerById } from '../customers/customers.ts';
import { recordEvent, requestOrigin } from '../audit/events.ts';
import { CSRF_PURPOSES, isValidCsrfToken } from '../http/csrf.ts';
import { formBodies, formField } from '../http/forms.ts';
import { PageError } from '../http/errors.ts';
import { noStore } from '../http/security-headers.ts';
import type { Logger } from '../log.ts';
import { passkeyCeremonies } from '../passkeys/ceremonies.ts';
import { CallError, FORBIDDEN, jsonCall, jsonField, requireCsrfHeader } from '../passkeys/json-calls.ts';
import { MAX_PASSKEY_NAME_LENGTH, passkeysOfCustomer, removePasskey } from '../passkeys/passkeys.ts';
import { isStorableText } from '../db/storable.ts';
import {
  behindSignIn,
  signedInSession,
  type BankSession,
  type BankSessions,
  type SignedInSession,
} from './bank-session.ts';
import { formatWhen } from './present.ts';

/**
 * The Security section's passkeys, at /account/security/passkeys: the JSON calls with which
 * public/passkeys.js adds one, and the form that removes one. The list itself is
 * views/partials/passkeys.pug, filled by `passkeysSection` on whichever page includes it.
 */

export interface PasskeyPagesDependencies {
  knex: Knex;
  cookieKeys: string[];
  sessions: BankSessions;
  issuer: string;
  log: Logger;
}

/** The account pages' own CSRF purpose (src/account-pages/router.ts): the page's `csrf` local. */
// The Security page's forms' purpose: the passkey list lives on that page.
const ACCOUNT_CSRF_PURPOSE = CSRF_PURPOSES.accountSecurity;
/** Where the list of passkeys is shown. */
const PASSKEYS_PAGE = '/account/security';

export interface PasskeyListItem {
  id: string;
  name: string;
  addedAt: string;
  lastUsedAt: string;
  kind: string;
}

/** The locals views/partials/passkeys.pug needs, for the page that includes it. */
export async function passkeysSection(
  knex: Knex,
  customerId: string,
): Promise<{ passkeys: PasskeyListItem[] }> {
  const passkeys = await passkeysOfCustomer(knex, customerId);
  return {
    passkeys: passkeys.map((passkey) => ({
      id: passkey.id,
      name: passkey.name,
      addedAt: formatWhen(passkey.createdAt),
      lastUsedAt: formatWhen(passkey.lastUsedAt),
      kind: passkey.deviceType === 'singleDevice' ? 'On one device' : 'Synced between your devices',
    })),
  };
}

/** The name the customer gave the new passkey, checked before any ceremony starts. */
function passkeyName(ctx: Context): string {
  const name = jsonField(ctx, 'name');
  if (typeof name !== 'string' || name.trim() === '' || !isStorableText(name, MAX_PASSKEY_NAME_LENGTH)) {
    throw new CallError(
      400,
      'invalid_name',
      `Give the passkey a name of 1 to ${MAX_PASSKEY_NAME_LENGTH} characters.`,
    );
  }
  return name.trim();
}

export function passkeyPagesRouter({
  knex,
  cookieKeys,
  sessions,
  issuer,
  log,
}: PasskeyPagesDependencies): Router {
  const router = new Router({ prefix: '/account/security/passkeys' });
  const ceremonies = passkeyCeremonies(knex, issuer, log);
  const origin = new URL(issuer).origin;
  const forms = formBodies();

  async function signedInCall(ctx: Context): Promise<SignedInSession> {
    const session = await signedInSession(sessions, ctx);
    // Same answer as a missing token: a script on a signed-out page learns nothing more.
    if (!session) throw FORBIDDEN;
    requireCsrfHeader(ctx, cookieKeys, ACCOUNT_CSRF_PURPOSE, session.uid);
    return session;
  }

  /** The challenge of a registration belongs to this session and no other. */
  const binding = (session: BankSession) => `session:${session.uid}`;

  router.use(noStore());

  router.post(
    '/options',
    jsonCall(origin, async (ctx) => {
      const session = await signedInCall(ctx);
      passkeyName(ctx);
      const customer = await findCustomerById(knex, session.accountId);
      if (!customer) throw FORBIDDEN;
      ctx.body = await ceremonies.registrationOptions(customer, binding(session));
    }),
  );

  router.post(
    '/',
    jsonCall(origin, async (ctx) => {
      const session = await signedInCall(ctx);
      const name = passkeyName(ctx);
      const outcome = await ceremonies.register(
        session.accountId,
        binding(session),
        name,
        jsonField(ctx, 'credential'),
      );
      if (!outcome.ok) {
        throw new CallError(400, 'passkey_refused', 'The passkey could not be added. Try again.');
      }
      await recordEvent(knex, {
        customerId: session.accountId,
        type: 'passkey_added',
        ...requestOrigin(ctx),
        detail: { passkey: outcome.passkey.id, name: outcome.passkey.name },
      });
      ctx.status = 201;
      ctx.body = { id: outcome.passkey.id, name: outcome.passkey.name, redirectTo: PASSKEYS_PAGE };
    }),
  );

  router.post(
    '/:id/remove',
    forms,
    behindSignIn(sessions, async (ctx: RouterContext, session) => {
      if (!isValidCsrfToken(cookieKeys, ACCOUNT_CSRF_PURPOSE, session.uid, formField(ctx, 'csrf'))) {
        throw new PageError(403, 'csrf_failed');
      }
      const removed = await removePasskey(knex, session.accountId, ctx.params.id ?? '');
      if (!removed) throw new PageError(404, 'not_found');
      await recordEvent(knex, {
        customerId: session.accountId,
        type: 'passkey_removed',
        ...requestOrigin(ctx),
        detail: { passkey: removed.id, name: removed.name },
      });
      ctx.status = 303;
      ctx.redirect(PASSKEYS_PAGE);
    }),
  );

  return router;
}
