import type { TestPassbook } from './passbook.ts';

/**
 * Access tokens minted the way Passbook's token endpoint saves them (a Grant and an AccessToken
 * through its own provider and adapter), so that the bank API can be tested with tokens that no
 * consent screen offers yet: a payment token carries one payment_initiation detail (RFC 9396)
 * and names the bank API as its audience (RFC 8707), with no scope. An ordinary token that reads
 * accounts carries the customer's account choice (`accounts`) as Passbook's consent screen writes it.
 */
import { accountInformation } from '../../src/oidc/account-information.ts';

export interface PaymentDetail extends Record<string, unknown> {
  type: string;
}

export interface SignIn {
  acr: string;
  amr: string[];
}

const TWO_FACTORS: SignIn = { acr: 'urn:passbook:acr:two-factors', amr: ['pwd', 'otp', 'mfa'] };

export interface MintOptions {
  clientId: string;
  customerId: string;
  details?: PaymentDetail[];
  audience?: string;
  scope?: string;
  /** The IBANs the customer chose to share: an account_information detail beside any others. */
  accounts?: string[];
  /** How the customer signed in; two factors unless said otherwise. */
  signIn?: SignIn;
}

/** A payment of 25.00 EUR to Jo Bloggs from `debtorIban`, with `changes` applied. */
export function paymentDetail(debtorIban: string, changes: Record<string, unknown> = {}): PaymentDetail {
  return {
    type: 'payment_initiation',
    instructedAmount: { currency: 'EUR', amount: '25.00' },
    creditorName: 'Jo Bloggs',
    creditorAccount: { iban: 'NL91ABNA0417164300' },
    remittanceInformationUnstructured: 'Dinner',
    debtorAccount: { iban: debtorIban },
    ...changes,
  };
}

/** The payment members of a detail: what the app sends as the body of POST /payments. */
export function paymentBody(detail: PaymentDetail): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(detail).filter(([name]) => !['type', 'locations', 'actions'].includes(name)),
  );
}

/**
 * Passbook copies acr and amr from the code or refresh token behind an access token
 * (extraTokenClaims); a token saved outside a request has neither, so they are set on the stored
 * token afterwards, where introspection reads them.
 */
async function recordSignIn(passbook: TestPassbook, grantId: string, signIn: SignIn): Promise<void> {
  const updated = await passbook
    .knex('oidc_models')
    .where({ kind: 'AccessToken', grant_id: grantId })
    .update({
      payload: passbook.knex.raw(`jsonb_set(payload, '{extra}', ?::jsonb)`, [JSON.stringify(signIn)]),
    });
  if (updated !== 1) throw new Error('the minted access token was not found');
}

export async function mintAccessToken(passbook: TestPassbook, options: MintOptions): Promise<string> {
  const { clientId, customerId: accountId } = options;
  const client = await passbook.provider.Client.find(clientId);
  if (!client) throw new Error(`no app ${clientId}`);
  const details = [
    ...(options.details ?? []),
    ...(options.accounts ? [accountInformation(options.accounts)] : []),
  ];
  const grant = new passbook.provider.Grant({ accountId, clientId });
  if (details.length) grant.rar = details;
  if (options.scope) grant.addOIDCScope(options.scope);
  const grantId = await grant.save();
  const token = new passbook.provider.AccessToken({
    accountId,
    client,
    grantId,
    gty: 'authorization_code',
    expiresIn: 300,
    ...(details.length ? { rar: details } : {}),
    ...(options.audience !== undefined ? { aud: options.audience } : {}),
  });
  token.scope = options.scope ?? '';
  const value = await token.save();
  await recordSignIn(passbook, grantId, options.signIn ?? TWO_FACTORS);
  return value;
}

/** A payment token exactly as Passbook issues one for `detail`: for the bank API, no scope. */
export function mintPaymentToken(
  passbook: TestPassbook,
  detail: PaymentDetail,
  options: Omit<MintOptions, 'details'>,
): Promise<string> {
  return mintAccessToken(passbook, { details: [detail], audience: passbook.bankApiUrl, ...options });
}
