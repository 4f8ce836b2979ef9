/**
 * The scope catalogue: every scope an app may ask for, the words the customer reads on the
 * consent screen (never the raw scope), and the claims it releases at UserInfo.
 */

export interface ScopeDefinition {
  scope: string;
  /** What the customer is asked to allow, in the bank's words. */
  consentWording: string;
  /** Standard claims this scope releases at UserInfo and in the ID token. */
  claims: readonly string[];
  /** Never granted without the customer seeing the consent screen for it. */
  alwaysAsk: boolean;
  /** Needs two factors used in this session within the last few minutes (see authentication.ts). */
  needsTwoFactors?: boolean;
}

export const SCOPE_CATALOGUE: readonly ScopeDefinition[] = [
  // amr (RFC 8176): how the customer proved who they are, in every ID token.
  { scope: 'openid', consentWording: 'Confirm who you are', claims: ['sub', 'amr'], alwaysAsk: false },
  {
    scope: 'profile',
    consentWording: 'See your name',
    claims: ['name', 'preferred_username', 'updated_at'],
    alwaysAsk: false,
  },
  {
    scope: 'email',
    consentWording: 'See your email address',
    claims: ['email', 'email_verified'],
    alwaysAsk: false,
  },
  {
    scope: 'offline_access',
    consentWording: "Stay connected when you're not using it",
    claims: [],
    alwaysAsk: false,
  },
  {
    scope: 'accounts:read',
    consentWording: 'See your account names and balances',
    claims: [],
    alwaysAsk: false,
  },
  { scope: 'transactions:read', consentWording: 'Read your transactions', claims: [], alwaysAsk: false },
  // No scope makes payments: a payment is one payment_initiation authorization detail, approved on
  // its own (docs/bank-api.md).
];

export const SUPPORTED_SCOPES: readonly string[] = SCOPE_CATALOGUE.map((definition) => definition.scope);

const NEEDS_TWO_FACTORS = new Set(
  SCOPE_CATALOGUE.filter((definition) => definition.needsTwoFactors === true).map(
    (definition) => definition.scope,
  ),
);

/** The scopes that need a fresh second factor before the consent screen. */
export function scopesNeedingTwoFactors(scopes: Iterable<string>): string[] {
  return [...scopes].filter((scope) => NEEDS_TWO_FACTORS.has(scope));
}

/** oidc-provider's `claims` option: scope -> claims it releases. */
export function claimsByScope(): Record<string, string[]> {
  return Object.fromEntries(
    SCOPE_CATALOGUE.filter((definition) => definition.claims.length > 0).map((definition) => [
      definition.scope,
      [...definition.claims],
    ]),
  );
}

export interface ConsentLine {
  wording: string;
  /** The app could already do this; always-asked scopes never count as already allowed. */
  alreadyAllowed: boolean;
}

/**
 * What the consent screen lists: everything the app will be able to do, in catalogue order, with
 * what it could already do marked, so that the customer always sees what they agree to.
 */
export function consentLinesFor(requested: Iterable<string>, notYetAllowed: Iterable<string>): ConsentLine[] {
  const wanted = new Set(requested);
  const asked = new Set(notYetAllowed);
  return SCOPE_CATALOGUE.filter((definition) => wanted.has(definition.scope)).map((definition) => ({
    wording: definition.consentWording,
    alreadyAllowed: !asked.has(definition.scope) && !definition.alwaysAsk,
  }));
}

/** The consent screen's lines for these scopes, in catalogue order, unknown scopes left out. */
export function consentWordingFor(scopes: Iterable<string>): string[] {
  const wanted = new Set(scopes);
  return SCOPE_CATALOGUE.filter((definition) => wanted.has(definition.scope)).map(
    (definition) => definition.consentWording,
  );
}
