import type { AdapterPayload } from 'oidc-provider';
import type { ModelChange, ModelChangeFeed } from './change-feed.ts';

/**
 * Owner of the process's copies of live access tokens and their grants: the rows an
 * introspection or UserInfo call reads, kept so that the next call for the same token needs no
 * database round trip. Correctness rests on three rules:
 *
 * - A copy dies the moment its row changes anywhere: the change feed (change-feed.ts) delivers
 *   every committed change to a live access token or grant, from any node; a change to a grant
 *   kills the copies of every token under it. This process's own changes are also applied at once.
 * - Copies are trusted only while the feed is live. When it is not, every lookup goes to the
 *   database, and the moment it stops being live every copy is forgotten.
 * - A copy lives no longer than its token, its grant, or `maxAgeMs`, whichever ends first.
 *
 * A read that a change overtakes (the change arrives while the row is on its way from the
 * database, possibly read before the change committed) is not kept.
 */

/** What the adapter reads for a grant-bound token: the token's row and its grant's. */
export interface TokenWithGrant {
  payload: AdapterPayload;
  consumed_at: Date | null;
  expires_at: Date | null;
  grant_id: string | null;
  grant_payload: AdapterPayload | null;
  grant_expires_at: Date | null;
}

export interface LiveTokenCacheOptions {
  /** How long a copy is kept at most, in milliseconds. */
  maxAgeMs: number;
  /** Copies kept at most; the oldest go first. */
  maxEntries: number;
  now?: () => number;
}

/** A database read under way: a change to what it reads, arriving before it ends, spoils it. */
export interface PendingRead {
  readonly id: string;
  readonly generation: number;
  spoiled: boolean;
}

export type LookupResult = 'hit' | 'miss' | 'bypass';

/** A copy as kept: the payloads as JSON text, so that each lookup hands out objects of its own. */
interface Entry {
  row: Omit<TokenWithGrant, 'payload' | 'grant_payload'>;
  payload: string;
  grantPayload: string | null;
  until: number;
}

function endOf(date: Date | null): number {
  return date ? date.getTime() : Number.POSITIVE_INFINITY;
}

/** A copy handed out is the caller's own: the provider builds its models from it. */
function rowOf(entry: Entry): TokenWithGrant {
  return {
    ...entry.row,
    payload: JSON.parse(entry.payload) as AdapterPayload,
    grant_payload: entry.grantPayload === null ? null : (JSON.parse(entry.grantPayload) as AdapterPayload),
  };
}

function entryOf(row: TokenWithGrant, until: number): Entry {
  const { payload, grant_payload: grantPayload, ...rest } = row;
  return {
    row: rest,
    payload: JSON.stringify(payload),
    grantPayload: grantPayload === null ? null : JSON.stringify(grantPayload),
    until,
  };
}

export class LiveTokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly tokensOfGrant = new Map<string, Set<string>>();
  private readonly pending = new Set<PendingRead>();
  /** Bumped whenever everything is forgotten: reads begun before it are not kept. */
  private generation = 0;
  private readonly feed: ModelChangeFeed;
  private readonly options: Required<LiveTokenCacheOptions>;
  /** Counted for /metrics: lookups answered here, from the database, or with the feed not live. */
  readonly lookups: Record<LookupResult, number> = { hit: 0, miss: 0, bypass: 0 };

  constructor(feed: ModelChangeFeed, options: LiveTokenCacheOptions) {
    this.feed = feed;
    this.options = { now: Date.now, ...options };
    feed.onChange((change) => this.changed(change));
    feed.onOutage(() => this.forgetEverything());
  }

  /** The token's copy, if one is kept and may be trusted now. */
  lookup(id: string): TokenWithGrant | undefined {
    if (!this.feed.isLive()) {
      this.lookups.bypass += 1;
      return undefined;
    }
    const entry = this.entries.get(id);
    if (entry && entry.until > this.options.now()) {
      this.lookups.hit += 1;
      return rowOf(entry);
    }
    if (entry) this.forgetToken(id);
    this.lookups.miss += 1;
    return undefined;
  }

  beginRead(id: string): PendingRead {
    const read: PendingRead = { id, generation: this.generation, spoiled: false };
    this.pending.add(read);
    return read;
  }

  /** Keeps what the read found, unless something overtook it; a token not found is not kept. */
  endRead(read: PendingRead, row: TokenWithGrant | undefined): void {
    this.pending.delete(read);
    if (!row || read.spoiled || read.generation !== this.generation || !this.feed.isLive()) return;
    const until = Math.min(
      this.options.now() + this.options.maxAgeMs,
      endOf(row.expires_at),
      row.grant_id ? endOf(row.grant_expires_at) : Number.POSITIVE_INFINITY,
    );
    if (until <= this.options.now()) return;
    this.forgetToken(read.id);
    if (this.entries.size >= this.options.maxEntries) this.forgetOldest();
    this.entries.set(read.id, entryOf(row, until));
    if (row.grant_id) {
      const tokens = this.tokensOfGrant.get(row.grant_id) ?? new Set<string>();
      tokens.add(read.id);
      this.tokensOfGrant.set(row.grant_id, tokens);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** A change this process makes itself, applied before and again after it commits. */
  changed(change: ModelChange): void {
    if (change.kind === '*') this.forgetEverything();
    else if (change.kind === 'AccessToken') this.forgetToken(change.id, true);
    else if (change.kind === 'Grant') this.forgetGrant(change.id);
  }

  private forgetToken(id: string, spoilReads = false): void {
    if (spoilReads) for (const read of this.pending) if (read.id === id) read.spoiled = true;
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    const grantId = entry.row.grant_id;
    const tokens = grantId ? this.tokensOfGrant.get(grantId) : undefined;
    tokens?.delete(id);
    if (grantId && tokens?.size === 0) this.tokensOfGrant.delete(grantId);
  }

  private forgetGrant(grantId: string): void {
    // Which grant a read under way will find is not known yet: every such read is spoilt.
    for (const read of this.pending) read.spoiled = true;
    for (const id of this.tokensOfGrant.get(grantId) ?? []) this.entries.delete(id);
    this.tokensOfGrant.delete(grantId);
  }

  private forgetOldest(): void {
    const oldest = this.entries.keys().next();
    if (!oldest.done) this.forgetToken(oldest.value);
  }

  private forgetEverything(): void {
    this.generation += 1;
    this.entries.clear();
    this.tokensOfGrant.clear();
  }
}
