import { AsyncLocalStorage } from 'node:async_hooks';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Knex } from '../../db/knex.ts';
import { findClientMetadata } from '../../clients/clients.ts';
import { MAX_IDENTIFIER_LENGTH, isStorableJson, isStorableText } from '../../db/storable.ts';
import {
  afterCommit,
  beforeCommit,
  forReading,
  forWriting,
  holdsWork,
  settleLostCommitBy,
  writeTargetOf,
  type WriteTarget,
} from '../../db/request-transaction.ts';
import { TABLE, deleteInBatches } from './table.ts';
import { ReplayDetected, answerUnavailableDatabase, atTokenEndpoint } from '../engine-internals.ts';
import { preparedRaw } from '../../db/prepared.ts';
import {
  grantUseToRecord,
  kindWritten,
  makeHeldWrites,
  type HeldWrite,
  type ModelRowWrite,
} from './held-writes.ts';
import type { LiveTokenCache, TokenWithGrant } from './live-tokens.ts';

/**
 * The adapter oidc-provider stores its models through: one row of `oidc_models` per session,
 * interaction, code, token, grant, PAR request and replay record (see table.ts), and clients read
 * from `clients`. Within a request every write goes into the request's transaction
 * (src/db/request-transaction.ts): a refresh's consume, its new tokens and the grant's last use
 * commit together, before the app sees any of them. Upserts and deletes (and the token
 * endpoint's consumes) are held back to the request's end and made there as one statement
 * (held-writes.ts); the request's reads of a kind make its held writes of that kind first.
 * Access tokens, with their grants, are also looked up in the process's live-token cache
 * (live-tokens.ts) by requests that have written nothing yet, such as introspection and UserInfo.
 */

/** Consumed refresh tokens kept per grant, so that replaying a recent one is still recognised. */
const CONSUMED_REFRESH_TOKENS_KEPT = 10;

/**
 * Pruning is a statement of its own, so it runs on every tenth rotation rather than on every
 * refresh-token write: a grant keeps between 10 and 19 consumed tokens of a chain, never
 * fewer than the 10 most recent.
 */
function prunesOnSave(payload: AdapterPayload): boolean {
  const rotations = typeof payload.rotations === 'number' ? payload.rotations : 0;
  return rotations > 0 && rotations % CONSUMED_REFRESH_TOKENS_KEPT === 0;
}

interface ModelRow {
  payload: AdapterPayload;
  consumed_at: Date | null;
}

/**
 * Every request that presents a code or token goes on to load its grant. The token's find reads
 * the live grant in the same statement, and the request's next Grant find is answered with it:
 * one round trip instead of two, and both rows from one snapshot. The scope is one HTTP request
 * (withPrefetchScope); an entry serves one find, and any write to the grant drops it.
 */
interface RequestStorage {
  prefetchedGrants: Map<string, AdapterPayload | null>;
  /** The request's writes, held back until it settles (held-writes.ts). */
  held: HeldWrite[] | undefined;
  /** Rows of the kinds found again within a request, as first found, as JSON (see REREAD_KINDS). */
  found: Map<string, string | undefined>;
}

const requestStorage = new AsyncLocalStorage<RequestStorage>();
const GRANT_BOUND_KINDS = new Set(['AccessToken', 'RefreshToken', 'AuthorizationCode']);

/** One HTTP request's prefetched grants and held-back writes. */
export function withPrefetchScope<T>(work: () => Promise<T>): Promise<T> {
  return requestStorage.run({ prefetchedGrants: new Map(), held: undefined, found: new Map() }, work);
}

/**
 * The kinds one request finds again: an interaction page loads the interaction and its session,
 * and the engine loads both once more when the page hands it the result. Within one request a
 * second find of such a row is answered with a copy of the first, as if both had been made at
 * once; any write of the request to a row of the kind (this adapter is its only writer) drops
 * the kind's rows, so the request always sees what it wrote. Two finds of the sign-in form's
 * POST, two of the consent's.
 */
const REREAD_KINDS = new Set(['Interaction', 'Session']);

async function foundOnce(
  kind: string,
  key: string,
  read: () => Promise<AdapterPayload | undefined>,
): Promise<AdapterPayload | undefined> {
  const found = REREAD_KINDS.has(kind) ? requestStorage.getStore()?.found : undefined;
  const memo = `${kind} ${key}`;
  // Copies as JSON text (the payloads are jsonb): a third of structuredClone's cost, made once.
  if (found?.has(memo)) {
    const text = found.get(memo);
    return text === undefined ? undefined : (JSON.parse(text) as AdapterPayload);
  }
  const payload = await read();
  found?.set(memo, payload === undefined ? undefined : JSON.stringify(payload));
  return payload;
}

function forgetFound(kind: string): void {
  if (!REREAD_KINDS.has(kind)) return;
  const found = requestStorage.getStore()?.found;
  for (const memo of found?.keys() ?? []) if (memo.startsWith(`${kind} `)) found?.delete(memo);
}

function prefetchedGrants(): Map<string, AdapterPayload | null> | undefined {
  return requestStorage.getStore()?.prefetchedGrants;
}

/**
 * A grant read by another query of this folder (grants-and-sessions.ts), for the request's next
 * find of it: the read and the find are one round trip.
 */
export function prefetchGrant(grantId: string, payload: AdapterPayload): void {
  prefetchedGrants()?.set(grantId, payload);
}

function forgetPrefetchedGrant(grantId: string): void {
  prefetchedGrants()?.delete(grantId);
}

/**
 * Holds `writes` back until the request settles, where they are made together (held-writes.ts).
 * False outside a request, or once it has settled, where they must be made now.
 */
function holdBack(knex: Knex, ...writes: HeldWrite[]): boolean {
  const storage = requestStorage.getStore();
  if (!storage || !holdsWork(knex)) return false;
  if (!storage.held) {
    const held: HeldWrite[] = [];
    const registered = beforeCommit(knex, (target) => {
      // Made now (the request settles, or a reader asked for them): the next write holds anew.
      if (storage.held === held) storage.held = undefined;
      return makeHeldWritesInRequest(target, held.splice(0));
    });
    if (!registered) return false;
    storage.held = held;
  }
  storage.held.push(...writes);
  return true;
}

/**
 * Makes the request's held-back writes now, in its transaction, if any of them changes rows of
 * these kinds (all of them without kinds): before the request reads such rows, so that it sees
 * its own writes, and before it writes at once, so that its writes land in the order made.
 */
export async function makeHeldBackWritesNow(knex: Knex, kinds?: readonly string[]): Promise<void> {
  const held = requestStorage.getStore()?.held;
  if (!held?.length) return;
  if (kinds && !held.some((write) => kinds.includes(kindWritten(write)))) return;
  const db = await forWriting(knex);
  await makeHeldWritesInRequest(writeTargetOf(db), held.splice(0));
}

/** The held writes, made in the request's transaction, whose lost commit can then be settled. */
async function makeHeldWritesInRequest(target: WriteTarget, writes: HeldWrite[]): Promise<void> {
  const { transactionId } = await makeHeldWrites(target, writes, alreadyConsumed);
  if (transactionId) settleLostCommitBy(transactionId);
}

/*
 * The lookups on every token request are written out once: building them with knex's query
 * builder cost more CPU per request than PostgreSQL took to answer them.
 */
const FIND = `SELECT payload, consumed_at FROM ${TABLE}
  WHERE kind = ? AND id = ? AND (expires_at IS NULL OR expires_at > ?) LIMIT 1`;
const FIND_WITH_GRANT = `SELECT t.payload, t.consumed_at, t.expires_at, t.grant_id,
    g.payload AS grant_payload, g.expires_at AS grant_expires_at
  FROM ${TABLE} t
  LEFT JOIN ${TABLE} g ON g.kind = 'Grant' AND g.id = t.grant_id AND (g.expires_at IS NULL OR g.expires_at > ?)
  WHERE t.kind = ? AND t.id = ? AND (t.expires_at IS NULL OR t.expires_at > ?) LIMIT 1`;

function toEpochSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

function withConsumed(row: ModelRow | undefined): AdapterPayload | undefined {
  if (!row) return undefined;
  return row.consumed_at ? { ...row.payload, consumed: toEpochSeconds(row.consumed_at) } : row.payload;
}

const FIND_BY_UID = `SELECT payload, consumed_at FROM ${TABLE}
  WHERE kind = ? AND uid = ? AND (expires_at IS NULL OR expires_at > ?) LIMIT 1`;
const FIND_BY_USER_CODE = `SELECT payload, consumed_at FROM ${TABLE}
  WHERE kind = ? AND user_code = ? AND (expires_at IS NULL OR expires_at > ?) LIMIT 1`;
const DESTROY = `DELETE FROM ${TABLE} WHERE kind = ? AND id = ?`;

/** The error a lost race to consume an artefact answers with. */
function alreadyConsumed(kind: string): Error {
  return kind === 'PushedAuthorizationRequest'
    ? new errors.InvalidRequestUri('request_uri has already been used')
    : new errors.InvalidGrant('grant request is invalid');
}

/*
 * Insert-only, so that of two simultaneous copies of one proof or assertion exactly one is
 * stored: a conflicting row another request has written but not yet committed makes this wait for
 * that commit (or rollback), then decide. An expired row that the purge has not reached yet is
 * taken over, as if it were gone; a live one is left alone and nothing is returned.
 */
const INSERT_REPLAY_RECORD = `INSERT INTO ${TABLE} AS existing (kind, id, payload, client_id, expires_at)
  VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (kind, id) DO UPDATE
    SET payload = EXCLUDED.payload, client_id = EXCLUDED.client_id, expires_at = EXCLUDED.expires_at,
      consumed_at = NULL
    WHERE existing.expires_at IS NOT NULL AND existing.expires_at <= ?
  RETURNING id`;

/** Whether a key the provider looks a model up by (id, uid, user code, grant id) can be stored. */
function isStorableKey(key: unknown): key is string {
  return isStorableText(key, MAX_IDENTIFIER_LENGTH);
}

/** Null and undefined are stored as NULL; anything else must be a storable key. */
function isStorableOptionalKey(key: unknown): boolean {
  return key === undefined || key === null || isStorableKey(key);
}

/**
 * Request data ends up in what the provider saves (an interaction keeps the authorization
 * request's state and nonce, a session the sign-out request's state), and PostgreSQL refuses
 * some of it: the request is the client's error, answered as one (400 invalid_request).
 */
function unstorable(what: string): Error {
  return new errors.InvalidRequest(`${what} contains characters that cannot be accepted`);
}

/** The kinds whose rows the live-token cache holds copies of. */
const CACHED_KINDS = new Set(['AccessToken', 'Grant']);

export class PostgresAdapter implements Adapter {
  private readonly knex: Knex;
  private readonly kind: string;
  private readonly liveTokens: LiveTokenCache | undefined;

  constructor(knex: Knex, kind: string, liveTokens?: LiveTokenCache) {
    this.knex = knex;
    this.kind = kind;
    this.liveTokens = CACHED_KINDS.has(kind) ? liveTokens : undefined;
  }

  /**
   * A change to a row the cache may hold, applied to this process's copies at once and again
   * once it has committed: the change feed brings it to the other processes, and back here.
   */
  private async changing(id: string, kind = this.kind): Promise<void> {
    const cache = this.liveTokens;
    if (!cache) return;
    cache.changed({ kind, id });
    await afterCommit(this.knex, () => cache.changed({ kind, id }));
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number | undefined): Promise<void> {
    if (!isStorableKey(id)) throw unstorable('an identifier');
    const indexed = [payload.grantId, payload.uid, payload.userCode, payload.accountId, payload.clientId];
    if (!indexed.every(isStorableOptionalKey) || !isStorableJson(payload)) throw unstorable('the request');
    if (this.kind === 'Grant') forgetPrefetchedGrant(id);
    forgetFound(this.kind);
    await this.changing(id);
    const row: ModelRowWrite = {
      kind: this.kind,
      id,
      payload,
      grant_id: payload.grantId ?? null,
      uid: payload.uid ?? null,
      user_code: payload.userCode ?? null,
      customer_id: payload.accountId ?? null,
      client_id: payload.clientId ?? null,
      expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
    };
    const writes: HeldWrite[] = [{ type: 'upsert', row }, ...this.followUps(payload)];
    if (this.kind !== 'ReplayDetection' && holdBack(this.knex, ...writes)) return;
    await makeHeldBackWritesNow(this.knex);
    const db = await forWriting(this.knex);
    if (this.kind === 'ReplayDetection') {
      await insertReplayRecord(db, row);
      return;
    }
    await makeHeldWritesInRequest(writeTargetOf(db), writes);
  }

  /**
   * What an upsert brings along, in the same statement: an access token issued is the grant used
   * (the account pages show when an app last was); a refresh token's chain is pruned.
   */
  private followUps(payload: AdapterPayload): HeldWrite[] {
    const grantId = typeof payload.grantId === 'string' ? payload.grantId : undefined;
    if (!grantId) return [];
    const use = this.kind === 'AccessToken' ? grantUseToRecord(grantId) : undefined;
    const prune = this.kind === 'RefreshToken' && prunesOnSave(payload);
    return [
      ...(use ? [{ type: 'grant-used' as const, grantId, ...use }] : []),
      ...(prune ? [{ type: 'prune-consumed' as const, grantId, keep: CONSUMED_REFRESH_TOKENS_KEPT }] : []),
    ];
  }

  /** The kinds a find of this kind reads: a code's or token's find reads its grant too. */
  private readsKinds(): readonly string[] {
    return GRANT_BOUND_KINDS.has(this.kind) ? [this.kind, 'Grant'] : [this.kind];
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (!isStorableKey(id)) return undefined;
    await makeHeldBackWritesNow(this.knex, this.readsKinds());
    const prefetched = this.kind === 'Grant' ? prefetchedGrants() : undefined;
    if (prefetched?.has(id)) {
      const grant = prefetched.get(id);
      prefetched.delete(id);
      return grant ?? undefined;
    }
    if (GRANT_BOUND_KINDS.has(this.kind)) return this.findWithGrant(id);
    return foundOnce(this.kind, `id ${id}`, () => this.findOwn(id));
  }

  private async findOwn(id: string): Promise<AdapterPayload | undefined> {
    const db = await forReading(this.knex);
    const { rows } = await preparedRaw<{ rows: ModelRow[] }>(db, FIND, [this.kind, id, new Date()]);
    return withConsumed(rows[0]);
  }

  private async findWithGrant(id: string): Promise<AdapterPayload | undefined> {
    const db = await forReading(this.knex);
    // Within a request that has written, only the request's own transaction sees its writes.
    const cache = db === this.knex ? this.liveTokens : undefined;
    let row = cache?.lookup(id);
    if (!row) {
      const read = cache?.beginRead(id);
      const now = new Date();
      try {
        const { rows } = await preparedRaw<{ rows: TokenWithGrant[] }>(db, FIND_WITH_GRANT, [
          now,
          this.kind,
          id,
          now,
        ]);
        row = rows[0];
      } finally {
        if (read) cache?.endRead(read, row);
      }
    }
    if (row?.grant_id) prefetchedGrants()?.set(row.grant_id, row.grant_payload);
    return withConsumed(row);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    if (!isStorableKey(uid)) return undefined;
    await makeHeldBackWritesNow(this.knex, this.readsKinds());
    return foundOnce(this.kind, `uid ${uid}`, async () => {
      const db = await forReading(this.knex);
      const { rows } = await preparedRaw<{ rows: ModelRow[] }>(db, FIND_BY_UID, [this.kind, uid, new Date()]);
      return withConsumed(rows[0]);
    });
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    if (!isStorableKey(userCode)) return undefined;
    await makeHeldBackWritesNow(this.knex, this.readsKinds());
    const db = await forReading(this.knex);
    const { rows } = await preparedRaw<{ rows: ModelRow[] }>(db, FIND_BY_USER_CODE, [
      this.kind,
      userCode,
      new Date(),
    ]);
    return withConsumed(rows[0]);
  }

  async destroy(id: string): Promise<void> {
    if (!isStorableKey(id)) throw unstorable('an identifier');
    if (this.kind === 'Grant') forgetPrefetchedGrant(id);
    forgetFound(this.kind);
    await this.changing(id);
    if (holdBack(this.knex, { type: 'destroy', kind: this.kind, id })) return;
    await makeHeldBackWritesNow(this.knex);
    const db = await forWriting(this.knex);
    await preparedRaw(db, DESTROY, [this.kind, id]);
  }

  /**
   * Atomic: of two simultaneous redemptions of one code or refresh token, exactly one marks it
   * consumed; the other fails here, because the library checks `consumed` before calling us. Under
   * the request's transaction the second waits for the first to commit (or roll back), then finds
   * the row consumed (or takes it).
   */
  async consume(id: string): Promise<void> {
    if (!isStorableKey(id)) throw unstorable('an identifier');
    forgetFound(this.kind);
    const write: HeldWrite = { type: 'consume', kind: this.kind, id, at: new Date() };
    // Only the token endpoint's consumes wait: elsewhere (a PAR request used at the authorization
    // endpoint) a lost race must stop the request before it goes on.
    if (atTokenEndpoint() && holdBack(this.knex, write)) return;
    await makeHeldBackWritesNow(this.knex);
    const db = await forWriting(this.knex);
    await makeHeldWritesInRequest(writeTargetOf(db), [write]);
  }

  /** Deletes in batches, so that revoking a grant with many tokens never holds a long lock. */
  async revokeByGrantId(grantId: string): Promise<void> {
    if (!isStorableKey(grantId)) throw unstorable('a grant identifier');
    forgetPrefetchedGrant(grantId);
    // Every copy of a token under the grant goes, as the grant's own change would take them.
    await this.changing(grantId, 'Grant');
    await makeHeldBackWritesNow(this.knex);
    const db = await forWriting(this.knex);
    await deleteInBatches(db, (query) => query.where({ kind: this.kind, grant_id: grantId }));
  }
}

interface ReplayRecordRow {
  kind: string;
  id: string;
  payload: AdapterPayload;
  client_id: string | null;
  expires_at: Date | null;
}

async function insertReplayRecord(db: Knex, row: ReplayRecordRow): Promise<void> {
  const { rows } = await db.raw<{ rows: { id: string }[] }>(INSERT_REPLAY_RECORD, [
    row.kind,
    row.id,
    JSON.stringify(row.payload),
    row.client_id,
    row.expires_at,
    new Date(),
  ]);
  if (rows.length === 0) throw new ReplayDetected();
}

/** How long a client read from `clients` is reused: a client deleted by the CLI stops working within this. */
const CLIENT_CACHE_MS = 5_000;

/**
 * Clients are registered through the CLI and read from `clients`; the provider never writes them.
 * A short cache keeps the database off the hot path of every token request.
 */
class ClientAdapter implements Adapter {
  private readonly knex: Knex;
  private readonly cache = new Map<string, { metadata: AdapterPayload | undefined; until: number }>();

  constructor(knex: Knex) {
    this.knex = knex;
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const cached = this.cache.get(id);
    if (cached && cached.until > Date.now()) return cached.metadata;
    const metadata = await findClientMetadata(await forReading(this.knex), id);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(id, { metadata, until: Date.now() + CLIENT_CACHE_MS });
    return metadata;
  }

  upsert(): Promise<void> {
    return Promise.reject(new Error('clients are registered with the CLI, not through the provider'));
  }

  destroy(): Promise<void> {
    return Promise.reject(new Error('clients are removed with the CLI, not through the provider'));
  }

  async consume(): Promise<void> {}
  async findByUid(): Promise<undefined> {}
  async findByUserCode(): Promise<undefined> {}
  async revokeByGrantId(): Promise<void> {}
}

/** Every call, with an unreachable database answered as 503 temporarily_unavailable. */
function answeringUnavailable(adapter: Adapter): Adapter {
  return {
    upsert: (id, payload, expiresIn) =>
      answerUnavailableDatabase(() => adapter.upsert(id, payload, expiresIn)),
    find: (id) => answerUnavailableDatabase(() => adapter.find(id)),
    findByUid: (uid) => answerUnavailableDatabase(() => adapter.findByUid(uid)),
    findByUserCode: (userCode) => answerUnavailableDatabase(() => adapter.findByUserCode(userCode)),
    destroy: (id) => answerUnavailableDatabase(() => adapter.destroy(id)),
    consume: (id) => answerUnavailableDatabase(() => adapter.consume(id)),
    revokeByGrantId: (grantId) => answerUnavailableDatabase(() => adapter.revokeByGrantId(grantId)),
  };
}

/** oidc-provider's `adapter` option: one adapter per model name. */
export function postgresAdapterFactory(knex: Knex, liveTokens?: LiveTokenCache): (kind: string) => Adapter {
  const clients = answeringUnavailable(new ClientAdapter(knex));
  return (kind) =>
    kind === 'Client' ? clients : answeringUnavailable(new PostgresAdapter(knex, kind, liveTokens));
}
