import Router from '@koa/router';
import type { Context } from 'koa';
import QRCode from 'qrcode';
import type { Knex } from '../db/knex.ts';
import { recordEvent, requestOrigin, type AuditEventType } from '../audit/events.ts';
import { changePassword, findCustomerById, InvalidCustomerError } from '../customers/customers.ts';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../customers/passwords.ts';
import type { TwoStepSettings } from '../customers/second-factors.ts';
import { base32Secret, groupedForTyping, otpauthUri } from '../customers/totp.ts';
import { formatRecoveryCode } from '../customers/recovery-codes.ts';
import { CSRF_PURPOSES, csrfToken, isValidCsrfToken } from '../http/csrf.ts';
import { formBodies, formField } from '../http/forms.ts';
import { PageError } from '../http/errors.ts';
import { noStore } from '../http/security-headers.ts';
import { renderPage } from '../http/views.ts';
import { sessionsOfCustomer } from '../oidc/storage/grants-and-sessions.ts';
import { behindSignIn, type BankSessions, type SignedInSession } from './bank-session.ts';
import { formatWhen } from './present.ts';
import { passkeysSection } from './passkeys.ts';

/**
 * The account pages' Security section at /account/security: changing the password (which signs
 * out every other session) and two-step verification with an authenticator app and recovery
 * codes. Behind the bank session, like the rest of /account; every form works without script.
 */

export interface SecurityDependencies {
  knex: Knex;
  cookieKeys: string[];
  sessions: BankSessions;
  twoStep: TwoStepSettings;
}

const CSRF_PURPOSE = CSRF_PURPOSES.accountSecurity;
const HOME = '/account/security';
const SET_UP = '/account/security/two-step/set-up';

/** What a finished change says when the browser comes back to the Security page. */
const DONE_MESSAGES: Record<string, string> = {
  password: 'Your password has been changed, and you have been signed out on every other device.',
  'two-step-off': 'Two-step verification is off. Your recovery codes no longer work.',
};

const WRONG_CODE = 'That code is not right, or it has been used already. Enter the code your app shows now.';

type SignedIn = SignedInSession;

export function securityRouter({ knex, cookieKeys, sessions, twoStep }: SecurityDependencies): Router {
  const router = new Router();
  const forms = formBodies();

  const signedIn = (handler: (ctx: Context, session: SignedIn) => Promise<void>) =>
    behindSignIn(sessions, handler);

  /** A form handler: signed in, and the form's CSRF token checked before anything is changed. */
  function form(handler: (ctx: Context, session: SignedIn) => Promise<void>) {
    return signedIn(async (ctx, session) => {
      if (!isValidCsrfToken(cookieKeys, CSRF_PURPOSE, session.uid, formField(ctx, 'csrf'))) {
        throw new PageError(403, 'csrf_failed');
      }
      await handler(ctx, session);
    });
  }

  function redirect(ctx: Context, to: string): void {
    ctx.status = 303;
    ctx.redirect(to);
  }

  function record(ctx: Context, session: SignedIn, type: AuditEventType): Promise<void> {
    return recordEvent(knex, { customerId: session.accountId, type, ...requestOrigin(ctx) });
  }

  interface SecurityMessages {
    done?: string | undefined;
    passwordError?: string;
    twoStepError?: string;
  }

  async function showSecurity(ctx: Context, session: SignedIn, messages: SecurityMessages, status?: number) {
    const [factors, customer] = await Promise.all([
      twoStep.status(session.accountId),
      findCustomerById(knex, session.accountId),
    ]);
    renderPage(
      ctx,
      'security',
      {
        title: 'Security',
        wide: true,
        csrf: csrfToken(cookieKeys, CSRF_PURPOSE, session.uid),
        username: customer?.username,
        twoStep: {
          on: factors.state === 'on',
          pending: factors.state === 'pending',
          since: formatWhen(factors.since),
          recoveryCodesLeft: factors.recoveryCodesLeft,
        },
        minPassword: MIN_PASSWORD_LENGTH,
        maxPassword: MAX_PASSWORD_LENGTH,
        ...(await passkeysSection(knex, session.accountId)),
        ...messages,
      },
      status,
    );
  }

  async function showSetUp(ctx: Context, session: SignedIn, secret: Buffer, error?: string): Promise<void> {
    const customer = await findCustomerById(knex, session.accountId);
    const uri = otpauthUri(secret, customer?.username ?? 'customer');
    const svg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    renderPage(
      ctx,
      'two-step-set-up',
      {
        title: 'Turn on two-step verification',
        csrf: csrfToken(cookieKeys, CSRF_PURPOSE, session.uid),
        qrCode: `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`,
        secret: groupedForTyping(base32Secret(secret)),
        error,
      },
      error ? 400 : undefined,
    );
  }

  function showRecoveryCodes(ctx: Context, codes: string[], justTurnedOn: boolean): void {
    renderPage(ctx, 'recovery-codes', {
      title: 'Your recovery codes',
      justTurnedOn,
      codes: codes.map(formatRecoveryCode),
    });
  }

  router.use(HOME, noStore());

  router.get(
    HOME,
    signedIn(async (ctx, session) => {
      const done = typeof ctx.query.done === 'string' ? DONE_MESSAGES[ctx.query.done] : undefined;
      await showSecurity(ctx, session, { done });
    }),
  );

  router.post(
    `${HOME}/password`,
    forms,
    form(async (ctx, session) => {
      const current = formField(ctx, 'current_password');
      const wanted = formField(ctx, 'new_password');
      if (wanted !== formField(ctx, 'confirm_password')) {
        return showSecurity(
          ctx,
          session,
          { passwordError: 'The new passwords do not match. Nothing was changed.' },
          400,
        );
      }
      let outcome;
      try {
        outcome = await changePassword(knex, session.accountId, current, wanted);
      } catch (error) {
        if (!(error instanceof InvalidCustomerError)) throw error;
        return showSecurity(
          ctx,
          session,
          {
            passwordError: `The new password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters. Nothing was changed.`,
          },
          400,
        );
      }
      if (outcome === 'wrong_password') {
        return showSecurity(
          ctx,
          session,
          { passwordError: 'Your current password is not right. Nothing was changed.' },
          400,
        );
      }
      // Whoever else knew the old password may be signed in somewhere: those sessions end now.
      for (const open of await sessionsOfCustomer(knex, session.accountId)) {
        if (open.uid === session.uid) continue;
        const other = await sessions.findByUid(open.uid);
        if (other) await sessions.end(other);
      }
      await record(ctx, session, 'password_changed');
      redirect(ctx, `${HOME}?done=password`);
    }),
  );

  router.post(
    `${HOME}/two-step/start`,
    forms,
    form(async (ctx, session) => {
      const secret = await twoStep.startEnrolment(session.accountId);
      redirect(ctx, secret ? SET_UP : HOME);
    }),
  );

  router.get(
    SET_UP,
    signedIn(async (ctx, session) => {
      const secret = await twoStep.pendingSecret(session.accountId);
      if (!secret) return redirect(ctx, HOME);
      await showSetUp(ctx, session, secret);
    }),
  );

  router.post(
    `${HOME}/two-step/confirm`,
    forms,
    form(async (ctx, session) => {
      const codes = await twoStep.confirmEnrolment(session.accountId, formField(ctx, 'code'));
      if (!codes) {
        const secret = await twoStep.pendingSecret(session.accountId);
        if (!secret) return redirect(ctx, HOME);
        return showSetUp(ctx, session, secret, WRONG_CODE);
      }
      await record(ctx, session, 'two_step_turned_on');
      showRecoveryCodes(ctx, codes, true);
    }),
  );

  router.post(
    `${HOME}/two-step/turn-off`,
    forms,
    form(async (ctx, session) => {
      if (!(await twoStep.turnOff(session.accountId, formField(ctx, 'code')))) {
        return showSecurity(ctx, session, { twoStepError: `${WRONG_CODE} A recovery code works too.` }, 400);
      }
      await record(ctx, session, 'two_step_turned_off');
      redirect(ctx, `${HOME}?done=two-step-off`);
    }),
  );

  router.post(
    `${HOME}/recovery-codes`,
    forms,
    form(async (ctx, session) => {
      const codes = await twoStep.replaceRecoveryCodes(session.accountId, formField(ctx, 'code'));
      if (!codes) {
        return showSecurity(ctx, session, { twoStepError: `${WRONG_CODE} A recovery code works too.` }, 400);
      }
      await record(ctx, session, 'recovery_codes_replaced');
      showRecoveryCodes(ctx, codes, false);
    }),
  );

  return router;
}
