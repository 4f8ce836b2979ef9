import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Interaction } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import { recordEvent, requestOrigin } from '../audit/events.ts';
import { noStore } from '../http/security-headers.ts';
import { ACCOUNT_SIGN_IN_NONCE_COOKIE, CSRF_PURPOSES } from '../http/csrf.ts';
import type { BankSessions } from '../account-pages/bank-session.ts';
import type { Logger } from '../log.ts';
import { passkeyCeremonies, type AuthenticationOutcome } from './ceremonies.ts';
import { acrFor } from '../oidc/authentication.ts';
import { CallError, FORBIDDEN, jsonCall, jsonField, requireCsrfHeader } from './json-calls.ts';
import { isDatabaseUnavailable } from '../db/unavailable.ts';

/**
 * "Sign in with a passkey" at both doors: an app's sign-in screen (/interaction/:uid/passkey…),
 * which finishes the interaction as the password form does, and the account pages
 * (/account/sign-in/passkey…), which start the bank session. JSON calls from public/passkeys.js;
 * each answers the address the script sends the browser to next.
 */

export interface PasskeySignInDependencies {
  provider: Provider;
  knex: Knex;
  cookieKeys: string[];
  sessions: BankSessions;
  issuer: string;
  log: Logger;
}

// The sign-in pages' own CSRF tokens, which the page already carries as its `csrf` local: an
// app's sign-in screen binds its token to the interaction (src/interactions/router.ts), the
// account pages' sign-in to a nonce in a cookie of its own (src/account-pages/router.ts).
const INTERACTION_CSRF_PURPOSE = CSRF_PURPOSES.interaction;
const ACCOUNT_SIGN_IN_CSRF_PURPOSE = CSRF_PURPOSES.accountSignIn;

const REFUSED = new CallError(
  401,
  'passkey_refused',
  'That passkey could not sign you in. Try again, or use your password.',
);

function assertion(ctx: Context): unknown {
  return jsonField(ctx, 'credential');
}

const SOMEONE_ELSE = new CallError(
  403,
  'passkey_of_someone_else',
  'That passkey belongs to another customer. Use one of your own, or your code.',
);

function signedInOrRefused(
  outcome: AuthenticationOutcome,
): asserts outcome is Extract<AuthenticationOutcome, { ok: true }> {
  if (!outcome.ok) throw REFUSED;
}

export function passkeySignInRouter({
  provider,
  knex,
  cookieKeys,
  sessions,
  issuer,
  log,
}: PasskeySignInDependencies): Router {
  const router = new Router();
  const ceremonies = passkeyCeremonies(knex, issuer, log);
  const origin = new URL(issuer).origin;

  /** The login interaction behind this request, bound to this browser by the provider's cookie. */
  async function loginInteraction(ctx: Context): Promise<Interaction> {
    let interaction: Interaction;
    try {
      interaction = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (error) {
      // A database that is away is not a lost sign-in: the caller is told to try again (503).
      if (isDatabaseUnavailable(error)) throw error;
      throw new CallError(
        400,
        'session_not_found',
        'Your sign-in took too long. Go back to the app and start again.',
      );
    }
    if (
      interaction.uid !== (ctx.params as Record<string, string | undefined>).uid ||
      interaction.prompt.name !== 'login'
    ) {
      throw new CallError(
        400,
        'session_not_found',
        'Your sign-in took too long. Go back to the app and start again.',
      );
    }
    requireCsrfHeader(ctx, cookieKeys, INTERACTION_CSRF_PURPOSE, interaction.uid);
    return interaction;
  }

  /** The account sign-in form's nonce, which its CSRF token and the challenge are both bound to. */
  function accountSignInNonce(ctx: Context): string {
    const nonce = ctx.cookies.get(ACCOUNT_SIGN_IN_NONCE_COOKIE, { signed: true });
    if (!nonce) throw FORBIDDEN;
    requireCsrfHeader(ctx, cookieKeys, ACCOUNT_SIGN_IN_CSRF_PURPOSE, nonce);
    return nonce;
  }

  router.use(['/interaction/:uid/passkey', '/account/sign-in/passkey'], noStore());

  router.post(
    '/interaction/:uid/passkey/options',
    jsonCall(origin, async (ctx) => {
      const interaction = await loginInteraction(ctx);
      ctx.body = await ceremonies.authenticationOptions(`interaction:${interaction.uid}`);
    }),
  );

  router.post(
    '/interaction/:uid/passkey',
    jsonCall(origin, async (ctx) => {
      const interaction = await loginInteraction(ctx);
      const outcome = await ceremonies.authenticate(`interaction:${interaction.uid}`, assertion(ctx));
      signedInOrRefused(outcome);
      // A step-up (the session already signed in) proves the same customer again, never another.
      const signedInAs = interaction.session?.accountId;
      if (signedInAs !== undefined && signedInAs !== outcome.customerId) throw SOMEONE_ELSE;
      // Recorded as a sign-in when the browser comes back to the provider (src/oidc/events.ts).
      const redirectTo = await provider.interactionResult(
        ctx.req,
        ctx.res,
        {
          login: {
            accountId: outcome.customerId,
            amr: outcome.amr,
            acr: acrFor(outcome.amr),
            remember: false,
          },
        },
        { mergeWithLastSubmission: false },
      );
      ctx.body = { redirectTo };
    }),
  );

  router.post(
    '/account/sign-in/passkey/options',
    jsonCall(origin, async (ctx) => {
      const nonce = accountSignInNonce(ctx);
      ctx.body = await ceremonies.authenticationOptions(`account-sign-in:${nonce}`);
    }),
  );

  router.post(
    '/account/sign-in/passkey',
    jsonCall(origin, async (ctx) => {
      const nonce = accountSignInNonce(ctx);
      const outcome = await ceremonies.authenticate(`account-sign-in:${nonce}`, assertion(ctx));
      signedInOrRefused(outcome);
      const session = await sessions.signIn(ctx, outcome.customerId, outcome.amr);
      await recordEvent(knex, {
        customerId: outcome.customerId,
        type: 'sign_in_succeeded',
        ...requestOrigin(ctx),
        detail: { session: session.uid },
      });
      ctx.body = { redirectTo: '/account' };
    }),
  );

  return router;
}
