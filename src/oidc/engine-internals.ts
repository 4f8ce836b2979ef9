import { timingSafeEqual } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import Provider, {
  errors,
  type Interaction,
  type KoaContextWithOIDC,
  type UnknownObject,
} from 'oidc-provider';
import type { JWK } from 'jose';
import { secretDigest } from '../clients/clients.ts';
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../db/unavailable.ts';

/**
 * Every place where Passbook relies on something oidc-provider does not document: a method it
 * patches, a cookie it writes for the engine, a model method it calls. Nothing else in the code
 * touches these, so an upgrade of oidc-provider that changes one of them breaks this file, and
 * test/oidc/engine-internals.test.ts says which. What the engine hands over is parsed here, not cast.
 */

export type EngineSession = InstanceType<Provider['Session']>;

/**
 * Client secrets are stored only as digests, so the provider sees the digest as the client's
 * `client_secret`. Its comparison is taught to digest what the app presents first, then compare
 * in constant time. (This is also why secret-keyed algorithms such as HS256 and
 * client_secret_jwt are not enabled: they need the secret itself.)
 */
export function compareSecretsAsDigests(provider: Provider, guard?: ClientSecretGuard): void {
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(presented: string) {
    const stored = Buffer.from(String(this.clientSecret ?? ''));
    const offered = Buffer.from(secretDigest(presented));
    if (stored.length === offered.length && timingSafeEqual(stored, offered)) return true;
    // Only failures meet the limit: the right secret never waits for the database, and whoever
    // knows an app's client_id cannot lock the app out. Its secret is 256 random bits, so the
    // limit is there to stop and show a flood of guesses, not because one could succeed.
    const wait = await answerUnavailableDatabase(async () => guard?.refusal(this.clientId));
    if (wait) throw new TooManyClientAuthentications(wait);
    await answerUnavailableDatabase(async () => guard?.failed(this.clientId));
    return false;
  };
}

/** Limits on guessing an app's secret: asked before each comparison, told of each failure. */
export interface ClientSecretGuard {
  /** Seconds the app must wait before its secret is checked again, or undefined. */
  refusal(clientId: string): Promise<number | undefined>;
  failed(clientId: string): Promise<void>;
}

/** 429 with Retry-After, in the token endpoint's JSON error form. */
class TooManyClientAuthentications extends errors.OIDCProviderError {
  constructor(retryAfterSeconds: number) {
    super(429, 'invalid_client');
    this.error_description = `too many failed client authentications; try again in ${retryAfterSeconds} seconds`;
    // The engine's own error handler writes the answer; the header goes on the request it serves.
    Provider.ctx?.set('Retry-After', String(retryAfterSeconds));
  }
}

/**
 * 503 temporarily_unavailable with Retry-After, for a database that cannot be reached. The engine
 * hides the words of every error of status 500 or more (`expose` false makes it server_error), so
 * this one is exposed; and it is never sent back to the app's redirect_uri, where neither the 503
 * nor Retry-After would reach anyone: the customer gets the bank's error page instead.
 */
class DatabaseUnavailable extends errors.OIDCProviderError {
  constructor(cause: unknown) {
    super(503, 'temporarily_unavailable', { cause });
    this.expose = true;
    this.allow_redirect = false;
    this.error_description = 'the service is temporarily unavailable; try again shortly';
    Provider.ctx?.set('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS));
  }
}

/** Runs work for the engine, answering an unreachable database as a 503 in the engine's own form. */
export async function answerUnavailableDatabase<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isDatabaseUnavailable(error)) throw new DatabaseUnavailable(error);
    throw error;
  }
}

/**
 * Runs `beforeAnswer` after the engine has handled a request and before it writes the answer, and
 * lets it replace that answer. The engine runs what `provider.use` gives it around its routes, and
 * each route handles its own errors and saves its session inside: once they resolve, ctx.status
 * and ctx.body are the answer (an error's included) and every write is made; the engine's Koa
 * writes the body only after this middleware resolves. An error that escapes a route anyway
 * reaches `beforeAnswer` with `escaped` set, and is thrown on.
 */
export function beforeEngineAnswers(
  provider: Provider,
  beforeAnswer: (ctx: Context, escaped: boolean) => Promise<void>,
): void {
  const hook: Middleware = async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      await beforeAnswer(ctx, true);
      throw error;
    }
    await beforeAnswer(ctx, false);
  };
  provider.use(hook);
}

/** The engine's name for the route a request took (`token`, `authorization`...), if it took one. */
export function engineRoute(ctx: Context): string | undefined {
  const oidc: unknown = Reflect.get(ctx, 'oidc');
  const route: unknown = typeof oidc === 'object' && oidc !== null ? Reflect.get(oidc, 'route') : undefined;
  return typeof route === 'string' ? route : undefined;
}

/**
 * The engine's session cookie, written by the account pages, which sign customers in outside an
 * authorization request. It must be exactly what the engine writes and reads itself: its name,
 * the session's `jti` as the value, signed with the same keys.
 */
export function sessionCookie(provider: Provider) {
  const name = provider.cookieName('session');
  const options = (ctx: Context) => ({
    httpOnly: true,
    sameSite: 'lax' as const,
    signed: true,
    secure: ctx.secure,
    overwrite: true,
  });
  return {
    write(ctx: Context, session: EngineSession): void {
      ctx.cookies.set(name, session.jti, options(ctx));
    },
    forget(ctx: Context): void {
      ctx.cookies.set(name, null, options(ctx));
    },
  };
}

/** The engine's session behind this request's cookie (a new, unsaved one when there is none). */
export function loadSession(provider: Provider, ctx: Context): Promise<EngineSession> {
  return provider.Session.get(ctx);
}

/**
 * Marks a session as signed in by this customer, as the engine does after a login interaction,
 * and gives it a new id: a session id planted before sign-in is worth nothing after it. The
 * session lives only as long as the browser (`transient`); the server-side one has its own limits.
 */
export function signInSession(session: EngineSession, customerId: string, amr: string[]): void {
  session.loginAccount({ accountId: customerId, amr, transient: true });
  session.resetIdentifier();
}

/**
 * The SSRF guard's own predicate (loopback, private, link-local, documentation ranges...), so that
 * registration refuses exactly the addresses delivery would. oidc-provider neither exports nor
 * types it; a release that moves it fails start-up here.
 */
const GUARD_MODULE: string = 'oidc-provider/lib/helpers/fetch_request.js';
const guard = (await import(GUARD_MODULE)) as { isSpecialUseIP?: unknown };
if (typeof guard.isSpecialUseIP !== 'function') {
  throw new Error(`${GUARD_MODULE} no longer provides isSpecialUseIP; see src/oidc/engine-internals.ts`);
}
const specialUse = guard.isSpecialUseIP as (address: string) => boolean;

export function isSpecialUseIP(address: string): boolean {
  return specialUse(address);
}

/** The part of oidc-provider's Client that sends a logout token (absent from its type definitions). */
export interface LogoutTokenRecipient {
  clientId: string;
  backchannelLogoutUri?: string;
}

interface EngineLogoutClient extends LogoutTokenRecipient {
  backchannelLogout(sub: string, sid: string | undefined): Promise<void>;
}

function hasLogoutSender(client: object): client is EngineLogoutClient {
  return typeof (client as Partial<EngineLogoutClient>).backchannelLogout === 'function';
}

/** The app as a recipient of logout tokens, or undefined if it is gone. */
export async function logoutTokenRecipient(
  provider: Provider,
  clientId: string,
): Promise<LogoutTokenRecipient | undefined> {
  const client = await provider.Client.find(clientId);
  if (!client) return undefined;
  if (!hasLogoutSender(client)) throw new Error("oidc-provider's Client no longer has backchannelLogout");
  return client;
}

/** Signs and POSTs the app its logout token, through the provider's `fetch` hook. */
export function sendBackchannelLogout(
  client: LogoutTokenRecipient,
  sub: string,
  sid: string | undefined,
): Promise<void> {
  if (!hasLogoutSender(client)) throw new Error("oidc-provider's Client no longer has backchannelLogout");
  return client.backchannelLogout(sub, sid);
}

/** What the consent prompt says is still missing, as oidc-provider's consent checks report it. */
export interface ConsentPromptDetails {
  missingOIDCScope: string[];
  missingOIDCClaims: string[];
}

function stringList(value: unknown, name: string): string[] {
  if (value === undefined) return [];
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value;
  throw new TypeError(`oidc-provider's consent prompt details: ${name} is not a list of strings`);
}

export function consentPromptDetails(interaction: Pick<Interaction, 'prompt'>): ConsentPromptDetails {
  const { details } = interaction.prompt;
  return {
    missingOIDCScope: stringList(details.missingOIDCScope, 'missingOIDCScope'),
    missingOIDCClaims: stringList(details.missingOIDCClaims, 'missingOIDCClaims'),
  };
}

/** A request parameter as the engine hands it over (typed `unknown`): its text, if it is text. */
export function textParam(params: UnknownObject | undefined, name: string): string | undefined {
  const value = params?.[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * Signing keys swapped in a running provider. The engine reads `jwks` once, at construction,
 * into a keystore and a published JWKS on its private instance; its own initialiser, called
 * again, validates the new set exactly as at start-up and replaces both at once (synchronously,
 * so a request signs with either the old set or the new one, never a mix). It is not exported or
 * typed; a release that moves it fails start-up here.
 */
const KEYSTORE_MODULE: string = 'oidc-provider/lib/helpers/initialize_keystore.js';
const keystoreModule = (await import(KEYSTORE_MODULE)) as { default?: unknown };
if (typeof keystoreModule.default !== 'function') {
  throw new Error(`${KEYSTORE_MODULE} no longer has a default export; see src/oidc/engine-internals.ts`);
}
const initializeKeystore = keystoreModule.default as (this: Provider, jwks: { keys: JWK[] }) => void;

export function replaceSigningKeys(provider: Provider, keys: JWK[]): void {
  initializeKeystore.call(provider, { keys });
}

/**
 * What the adapter throws when a replay record (a DPoP proof's or a client assertion's jti) is
 * already stored and live. `unique` below turns it into the engine's own answer for a replay;
 * should that ever not happen, it still answers as the client's error (400 invalid_request).
 */
export class ReplayDetected extends errors.InvalidRequest {
  constructor() {
    super('replay detected');
  }
}

/**
 * The engine checks a DPoP proof's or a client assertion's jti with `ReplayDetection.unique`: a
 * find, then a save. The adapter's save is insert-only and throws ReplayDetected when the record
 * is already there (a simultaneous copy got in first); `unique` answers that as the replay it is,
 * so each endpoint answers exactly as it does for a replay it finds (invalid_client for a client
 * assertion, invalid_grant or invalid_token or invalid_request for a DPoP proof).
 */
export function detectSimultaneousReplays(provider: Provider): void {
  const model = provider.ReplayDetection;
  if (typeof model.unique !== 'function') {
    throw new Error("oidc-provider's ReplayDetection no longer has unique; see src/oidc/engine-internals.ts");
  }
  const engineUnique = model.unique.bind(model);
  model.unique = async (iss, jti, exp) => {
    try {
      return await engineUnique(iss, jti, exp);
    } catch (error) {
      if (error instanceof ReplayDetected) return false;
      throw error;
    }
  };
}

/**
 * The bank session's grant for an app, put back after an authorization that used another grant.
 * The engine points the session at whichever grant `loadExistingGrant` returns, and a
 * session-bound token (an app without offline access) lives only while the session points at
 * its grant: a payment, approved on a grant of its own, would end the app's ordinary tokens in
 * that browser. The engine emits `authorization.success` once the code names its grant and before
 * it saves the session, so the session is pointed back there.
 */
const sessionGrantsToRestore = new WeakMap<object, string>();

export function restoreSessionGrantAfterwards(ctx: KoaContextWithOIDC, grantId: string | undefined): void {
  if (grantId) sessionGrantsToRestore.set(ctx, grantId);
}

export function restoreSessionGrants(provider: Provider): void {
  provider.on('authorization.success', (ctx: KoaContextWithOIDC) => {
    const grantId = sessionGrantsToRestore.get(ctx);
    const { session, client } = ctx.oidc;
    if (grantId && session && client) session.grantIdFor(client.clientId, grantId);
  });
}

/** Whether the request under way is at the engine's token endpoint (the grant types' route). */
export function atTokenEndpoint(): boolean {
  const ctx = Provider.ctx;
  return ctx !== undefined && engineRoute(ctx) === 'token';
}
