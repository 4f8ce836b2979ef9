import Router, { type RouterContext } from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Interaction, InteractionResults } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import { findCustomer } from '../customers/customers.ts';
import type { CustomerCopies } from '../customers/customer-copies.ts';
import { recordEvent, requestOrigin, sessionSecondFactor } from '../audit/events.ts';
import { answerRefusal, type SignIn, type SignInStep } from '../sign-in/sign-in.ts';
import { pendingSignIn, verifiedPendingSignIn } from '../sign-in/pending.ts';
import { TWO_FACTORS_REASON, USED_RECOVERY_CODE, acrFor, secondFactorOf } from '../oidc/authentication.ts';
import { CSRF_PURPOSES, csrfToken, isValidCsrfToken } from '../http/csrf.ts';
import { formBodies, formField, formFields } from '../http/forms.ts';
import { PageError } from '../http/errors.ts';
import { noStore } from '../http/security-headers.ts';
import { renderPage } from '../http/views.ts';
import { SCOPE_CATALOGUE, consentLinesFor, consentWordingFor } from '../oidc/scopes.ts';
import { consentPromptDetails, textParam } from '../oidc/engine-internals.ts';
import { isDatabaseUnavailable } from '../db/unavailable.ts';
import {
  covers,
  parsePaymentRequest,
  paymentWording,
  type ApprovedPayment,
  type PaymentInitiation,
  type PaymentPolicy,
} from '../payments/payment-initiation.ts';
import { groupedIban } from '../payments/iban.ts';
import { AccountsUnavailable, type LookUpAccounts, type PayableAccount } from '../payments/account-lookup.ts';
import { accountInformation, readsAccounts, sharedIbans } from '../oidc/account-information.ts';

/**
 * The bank's sign-in and consent screens. oidc-provider sends the customer here with an
 * interaction uid whenever it needs a login or a consent; we answer with a result and send the
 * browser back to the provider.
 */

export interface InteractionDependencies {
  provider: Provider;
  knex: Knex;
  cookieKeys: string[];
  signIn: SignIn;
  /** The node's copies of customers, for the name a consent screen greets (customer-copies.ts). */
  customerCopies?: CustomerCopies | undefined;
  payments: {
    policy: PaymentPolicy;
    /** The customer's accounts and balances, from the bank API (src/payments/account-lookup.ts). */
    lookUpAccounts: LookUpAccounts;
  };
}

const CSRF_PURPOSE = CSRF_PURPOSES.interaction;

export function interactionsRouter({
  provider,
  knex,
  cookieKeys,
  signIn,
  customerCopies,
  payments,
}: InteractionDependencies): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  const forms = formBodies();

  /** The interaction behind this request, bound to this browser by the provider's cookie. */
  async function loadInteraction(ctx: RouterContext): Promise<Interaction> {
    try {
      const interaction = await provider.interactionDetails(ctx.req, ctx.res);
      if (interaction.uid !== ctx.params.uid) throw new Error('interaction uid mismatch');
      return interaction;
    } catch (error) {
      // A database that is away is not a lost sign-in: the error page says to try again (503).
      if (isDatabaseUnavailable(error)) throw error;
      throw new PageError(400, 'session_not_found');
    }
  }

  function requireCsrf(ctx: Context, interaction: Interaction): void {
    if (!isValidCsrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid, formField(ctx, 'csrf'))) {
      throw new PageError(403, 'csrf_failed');
    }
  }

  async function clientName(interaction: Interaction): Promise<string> {
    const client = await provider.Client.find(clientIdOf(interaction));
    return client?.clientName ?? clientIdOf(interaction);
  }

  async function finish(ctx: Context, result: InteractionResults): Promise<void> {
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: false,
    });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  async function showCode(
    ctx: Context,
    interaction: Interaction,
    options: { pending?: string; error?: string; status?: number } = {},
  ) {
    const name = await clientName(interaction);
    renderPage(
      ctx,
      'second-factor',
      {
        title: 'Enter your code',
        action: `/interaction/${interaction.uid}/code`,
        cancelAction: `/interaction/${interaction.uid}/abort`,
        csrf: csrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid),
        pending: options.pending,
        // A signed-in session stepping up may prove its second factor with a passkey too.
        passkeyAction: options.pending ? undefined : `/interaction/${interaction.uid}/passkey`,
        lead: options.pending
          ? `Two-step verification is on for your account: enter a code to continue to ${name}.`
          : `${name} asks for something that needs two-step verification: enter a code to continue.`,
        clientName: name,
        error: options.error,
      },
      options.status,
    );
  }

  /** The session is signed in, and the request needs a second factor it has not given. */
  function needsStepUp(interaction: Interaction): boolean {
    const { reasons } = interaction.prompt;
    return (
      interaction.session?.accountId !== undefined &&
      (reasons.includes(TWO_FACTORS_REASON) ||
        reasons.includes('essential_acr') ||
        reasons.includes('essential_acrs'))
    );
  }

  async function showStepUp(ctx: Context, interaction: Interaction) {
    if (await signIn.hasSecondFactor(String(interaction.session?.accountId)))
      return showCode(ctx, interaction);
    renderPage(ctx, 'second-factor-needed', {
      title: 'Two-step verification needed',
      clientName: await clientName(interaction),
      csrf: csrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid),
      cancelAction: `/interaction/${interaction.uid}/unmet`,
    });
  }

  /** Ends the sign-in: straight back to the app, or first a word on the recovery codes left. */
  async function signedIn(ctx: Context, step: SignInStep & { kind: 'signed_in' }) {
    // The session cookie lasts only as long as the browser; the server-side session has its own limits.
    const result = {
      login: { accountId: step.customerId, amr: step.amr, acr: acrFor(step.amr), remember: false },
      // The activity log names the second factor; amr cannot tell a recovery code from an app's.
      ...(step.recoveryCodesLeft === undefined ? {} : { [USED_RECOVERY_CODE]: true }),
    };
    if (step.recoveryCodesLeft === undefined) return finish(ctx, result);
    const continueTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: false,
    });
    renderPage(ctx, 'recovery-codes-left', {
      title: 'Recovery code used',
      remaining: step.recoveryCodesLeft,
      continueTo,
    });
  }

  async function showLogin(ctx: Context, interaction: Interaction, error?: string, status?: number) {
    const name = await clientName(interaction);
    renderPage(
      ctx,
      'login',
      {
        title: 'Sign in',
        action: `/interaction/${interaction.uid}/login`,
        cancelAction: `/interaction/${interaction.uid}/abort`,
        csrf: csrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid),
        lead: `to continue to ${name}`,
        clientName: name,
        username: formField(ctx, 'username') || textParam(interaction.params, 'login_hint'),
        error,
      },
      status,
    );
  }

  /**
   * The customer's accounts to choose from when the request reads accounts, asked of the bank API
   * each time; none (and a word on the screen) when it cannot say, so that nothing is shared.
   */
  async function accountsToShare(interaction: Interaction): Promise<PayableAccount[] | 'unavailable'> {
    try {
      return await payments.lookUpAccounts(String(interaction.session?.accountId));
    } catch (error) {
      if (error instanceof AccountsUnavailable) return 'unavailable';
      throw error;
    }
  }

  /** The IBANs ticked when the screen opens: the choice the app holds already, else every account. */
  async function previouslyShared(interaction: Interaction, accounts: PayableAccount[]): Promise<string[]> {
    const grant = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
    const shared = sharedIbans(grant?.rar);
    return shared.length ? shared : accounts.map((account) => account.iban);
  }

  async function showConsent(
    ctx: Context,
    interaction: Interaction,
    options: { ticked?: string[]; error?: string; status?: number } = {},
  ) {
    const requested = requestedScopes(interaction);
    const notYetAllowed = consentPromptDetails(interaction).missingOIDCScope;
    const customer = await findCustomer(knex, String(interaction.session?.accountId), customerCopies);
    const alwaysAsk = SCOPE_CATALOGUE.filter((entry) => entry.alwaysAsk && requested.includes(entry.scope));
    const offered = readsAccounts(requested) ? await accountsToShare(interaction) : [];
    const accounts = offered === 'unavailable' ? [] : offered;
    const ticked = new Set(options.ticked ?? (await previouslyShared(interaction, accounts)));
    renderPage(
      ctx,
      'consent',
      {
        title: 'Allow access',
        uid: interaction.uid,
        csrf: csrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid),
        clientName: await clientName(interaction),
        customerName: customer?.name ?? customer?.username ?? 'you',
        permissions: consentLinesFor(requested, notYetAllowed),
        sensitive: alwaysAsk.map((entry) => entry.consentWording),
        readsAccounts: readsAccounts(requested),
        accountsUnavailable: offered === 'unavailable',
        accounts: accounts.map((account) => ({
          iban: account.iban,
          groupedIban: groupedIban(account.iban),
          name: account.name,
          ticked: ticked.has(account.iban),
        })),
        error: options.error,
      },
      options.status,
    );
  }

  /**
   * The accounts the customer ticked, each one the bank API offers now (the form is never
   * trusted); undefined, with the screen shown again, when a tick is not one of them or none is.
   */
  async function chosenAccounts(ctx: Context, interaction: Interaction): Promise<string[] | undefined> {
    const offered = await accountsToShare(interaction);
    // The bank cannot say which accounts there are: the app is connected with none of them.
    if (offered === 'unavailable') return [];
    const ticked = formFields(ctx, 'account');
    const known = new Set(offered.map((account) => account.iban));
    let error: string | undefined;
    if (ticked.some((iban) => !known.has(iban))) error = 'Choose only among the accounts shown.';
    else if (offered.length > 0 && ticked.length === 0) {
      error = 'Tick at least one account, or choose Deny.';
    }
    if (error) {
      await showConsent(ctx, interaction, {
        ticked: ticked.filter((iban) => known.has(iban)),
        error,
        status: 400,
      });
      return undefined;
    }
    // In the bank's order, each once.
    return offered.map((account) => account.iban).filter((iban) => ticked.includes(iban));
  }

  /** The payment this interaction asks the customer to approve, if it is a payment request. */
  function paymentOf(interaction: Interaction): PaymentInitiation | undefined {
    const details = textParam(interaction.params, 'authorization_details');
    if (details === undefined) return undefined;
    try {
      // Checked at the authorization endpoint already; read again here for its typed form.
      return parsePaymentRequest(JSON.parse(details), payments.policy);
    } catch {
      throw new PageError(400, 'invalid_request');
    }
  }

  /** The customer's accounts that can cover the payment, asked of the bank API each time. */
  async function accountsToPayFrom(interaction: Interaction, payment: PaymentInitiation) {
    let accounts: PayableAccount[];
    try {
      accounts = await payments.lookUpAccounts(String(interaction.session?.accountId));
    } catch (error) {
      if (error instanceof AccountsUnavailable) throw new PageError(503, 'accounts_unavailable');
      throw error;
    }
    return accounts.filter((account) => covers(account.balance, payment));
  }

  async function showPaymentConsent(
    ctx: Context,
    interaction: Interaction,
    payment: PaymentInitiation,
    accounts: PayableAccount[],
    options: { error?: string; status?: number } = {},
  ) {
    const customer = await findCustomer(knex, String(interaction.session?.accountId), customerCopies);
    // Confirming who the customer is goes without saying on a payment screen.
    const alsoAllowed = consentWordingFor(
      consentPromptDetails(interaction).missingOIDCScope.filter((scope) => scope !== 'openid'),
    );
    renderPage(
      ctx,
      'payment-consent',
      {
        title: 'Approve a payment',
        uid: interaction.uid,
        csrf: csrfToken(cookieKeys, CSRF_PURPOSE, interaction.uid),
        clientName: await clientName(interaction),
        customerName: customer?.name ?? customer?.username ?? 'you',
        wording: paymentWording(payment),
        alsoAllowed,
        accounts: accounts.map((account) => ({
          iban: account.iban,
          groupedIban: groupedIban(account.iban),
          name: account.name,
          balance: `€${account.balance.amount}`,
        })),
        error: options.error,
      },
      options.status,
    );
  }

  /**
   * The payment as approved, on a grant of its own: the request's detail and the account chosen,
   * which must be one the bank API offers now (the form is never trusted). Undefined if it is not.
   */
  async function approvePayment(
    ctx: Context,
    interaction: Interaction,
    payment: PaymentInitiation,
  ): Promise<string | undefined> {
    const accounts = await accountsToPayFrom(interaction, payment);
    const chosen = accounts.find((account) => account.iban === formField(ctx, 'debtor'));
    if (!chosen) {
      await showPaymentConsent(ctx, interaction, payment, accounts, {
        error: 'Choose one of the accounts shown to pay from.',
        status: 400,
      });
      return undefined;
    }
    const { missingOIDCScope, missingOIDCClaims } = consentPromptDetails(interaction);
    const grant = new provider.Grant({
      accountId: String(interaction.session?.accountId),
      clientId: clientIdOf(interaction),
    });
    if (missingOIDCScope.length) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims.length) grant.addOIDCClaims(missingOIDCClaims);
    const approved: ApprovedPayment = { ...payment, debtorAccount: { iban: chosen.iban } };
    grant.addRar(approved);
    const grantId = await grant.save();
    const factor = await paymentFactor(interaction);
    await recordEvent(knex, {
      customerId: interaction.session?.accountId,
      type: 'payment_approved',
      clientId: clientIdOf(interaction),
      ...requestOrigin(ctx),
      detail: {
        amount: payment.instructedAmount.amount,
        currency: payment.instructedAmount.currency,
        creditor: payment.creditorName,
        ...(factor ? { factor } : {}),
      },
    });
    return grantId;
  }

  /**
   * The second factor that let the customer approve: the sign-in or step-up of this very request
   * if there was one, else the newest sign-in of the session as the activity log recorded it.
   */
  async function paymentFactor(interaction: Interaction): Promise<string | undefined> {
    const login = interaction.lastSubmission?.login;
    if (login)
      return secondFactorOf(login.amr ?? [], interaction.lastSubmission?.[USED_RECOVERY_CODE] === true);
    const session = interaction.session;
    if (!session) return undefined;
    const recorded = await sessionSecondFactor(knex, session.accountId, session.uid);
    // A passkey's amr says so by itself; a code's does not say which kind.
    return recorded ?? (secondFactorOf(session.amr ?? []) === 'passkey' ? 'passkey' : undefined);
  }

  router.use(noStore());

  router.get('/', async (ctx) => {
    const interaction = await loadInteraction(ctx);
    if (interaction.prompt.name === 'login') {
      return needsStepUp(interaction) ? showStepUp(ctx, interaction) : showLogin(ctx, interaction);
    }
    if (interaction.prompt.name === 'consent') {
      const payment = paymentOf(interaction);
      if (!payment) return showConsent(ctx, interaction);
      return showPaymentConsent(ctx, interaction, payment, await accountsToPayFrom(interaction, payment));
    }
    throw new PageError(400, 'invalid_request');
  });

  router.post('/login', forms, async (ctx) => {
    const interaction = await loadInteraction(ctx);
    requireCsrf(ctx, interaction);
    if (interaction.prompt.name !== 'login') throw new PageError(400, 'session_not_found');
    const step = await signIn.withPassword({
      username: formField(ctx, 'username'),
      password: formField(ctx, 'password'),
      clientId: clientIdOf(interaction),
      origin: requestOrigin(ctx),
    });
    if (step.kind === 'refused') {
      const { error, status } = answerRefusal(ctx, step);
      return showLogin(ctx, interaction, error, status);
    }
    if (step.kind === 'code_needed') {
      return showCode(ctx, interaction, {
        pending: pendingSignIn(cookieKeys, interaction.uid, step.customerId),
      });
    }
    await signedIn(ctx, step);
  });

  // The second step: after the password (a pending sign-in in the form), or a step-up of the
  // signed-in session (nothing pending: the interaction already names the customer).
  router.post('/code', forms, async (ctx) => {
    const interaction = await loadInteraction(ctx);
    requireCsrf(ctx, interaction);
    if (interaction.prompt.name !== 'login') throw new PageError(400, 'session_not_found');
    const pending = formField(ctx, 'pending');
    const customerId = pending
      ? verifiedPendingSignIn(cookieKeys, interaction.uid, pending)
      : needsStepUp(interaction)
        ? interaction.session?.accountId
        : undefined;
    if (!customerId) throw new PageError(400, 'session_not_found');
    const step = await signIn.withCode({
      customerId,
      code: formField(ctx, 'code'),
      clientId: String(interaction.params.client_id),
      origin: requestOrigin(ctx),
    });
    if (step.kind === 'refused') {
      return showCode(ctx, interaction, { ...(pending ? { pending } : {}), ...answerRefusal(ctx, step) });
    }
    if (step.kind !== 'signed_in') throw new PageError(400, 'session_not_found');
    await signedIn(ctx, step);
  });

  // A customer with no second factor, asked for one, goes back to the app, which learns why.
  router.post('/unmet', forms, async (ctx) => {
    const interaction = await loadInteraction(ctx);
    requireCsrf(ctx, interaction);
    await finish(ctx, {
      error: 'unmet_authentication_requirements',
      error_description: 'the customer has no second factor set up',
    });
  });

  router.post('/consent', forms, async (ctx) => {
    const interaction = await loadInteraction(ctx);
    requireCsrf(ctx, interaction);
    if (interaction.prompt.name !== 'consent') throw new PageError(400, 'session_not_found');
    if (formField(ctx, 'decision') !== 'allow') {
      await recordEvent(knex, {
        customerId: interaction.session?.accountId,
        type: 'consent_denied',
        clientId: clientIdOf(interaction),
        ...requestOrigin(ctx),
      });
      await finish(ctx, { error: 'access_denied', error_description: 'the customer did not allow access' });
      return;
    }
    const payment = paymentOf(interaction);
    if (payment) {
      const grantId = await approvePayment(ctx, interaction, payment);
      if (grantId) await finish(ctx, { consent: { grantId } });
      return;
    }
    const accounts = readsAccounts(requestedScopes(interaction))
      ? await chosenAccounts(ctx, interaction)
      : null;
    if (accounts === undefined) return;
    await finish(ctx, { consent: { grantId: await grantRequestedAccess(provider, interaction, accounts) } });
  });

  router.post('/abort', forms, async (ctx) => {
    const interaction = await loadInteraction(ctx);
    requireCsrf(ctx, interaction);
    await finish(ctx, { error: 'access_denied', error_description: 'the customer cancelled the sign-in' });
  });

  return router;
}

/** The app this interaction is for; the engine puts its client_id in every interaction's params. */
function clientIdOf(interaction: Interaction): string {
  return textParam(interaction.params, 'client_id') ?? '';
}

/** The scopes the app asks for in this interaction. */
function requestedScopes(interaction: Interaction): string[] {
  return (textParam(interaction.params, 'scope') ?? '').split(' ');
}

/**
 * Adds what the consent screen showed to the customer's grant for this app, and saves it. The
 * accounts chosen (null when the request reads none) replace any earlier choice: a reused grant
 * would otherwise keep every choice ever made.
 */
async function grantRequestedAccess(
  provider: Provider,
  interaction: Interaction,
  accounts: string[] | null,
): Promise<string> {
  const { missingOIDCScope, missingOIDCClaims } = consentPromptDetails(interaction);
  const accountId = String(interaction.session?.accountId);
  const clientId = clientIdOf(interaction);
  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
  const grant = existing ?? new provider.Grant({ accountId, clientId });
  if (missingOIDCScope.length) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims.length) grant.addOIDCClaims(missingOIDCClaims);
  if (accounts) grant.rar = [accountInformation(accounts)];
  return grant.save();
}
