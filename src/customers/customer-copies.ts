import type { ModelChange, ModelChangeFeed } from '../oidc/storage/change-feed.ts';
import type { Customer } from './customers.ts';

/**
 * Owner of the process's copies of customers as the token endpoint, UserInfo and the consent
 * screens read them (the claims of an ID token, the customer a refresh is for, the name a consent
 * screen greets), kept so that the next request for the same customer needs no database round
 * trip. The same three rules as the live-token cache (src/oidc/storage/live-tokens.ts):
 *
 * - A copy dies the moment its row changes anywhere: a trigger on `customers`
 *   (migrations/20261203200000) announces every committed change to what a copy holds, and to
 *   the row's existence, on the change feed that every node listens to.
 * - Copies are trusted only while the feed is live; the moment it is not, every copy is
 *   forgotten, and every lookup goes to the database until it is live again.
 * - A copy lives no longer than `maxAgeMs`.
 *
 * A read that a change to any customer overtakes is not kept: such changes are rare, and so the
 * rule can be that simple. A request that has written customers reads past the copies (the caller
 * sees to it), so that it sees its own uncommitted changes.
 */

export interface CustomerCopiesOptions {
  /** How long a copy is kept at most, in milliseconds. */
  maxAgeMs: number;
  /** Copies kept at most; the oldest go first. */
  maxEntries: number;
  now?: () => number;
}

interface Entry {
  customer: Customer;
  until: number;
}

/** A copy handed out is the caller's own. */
function copyOf(customer: Customer): Customer {
  return { ...customer, updated_at: new Date(customer.updated_at) };
}

export class CustomerCopies {
  private readonly entries = new Map<string, Entry>();
  /** Bumped at every change to any customer and at every outage: reads begun before are not kept. */
  private changes = 0;
  private readonly feed: ModelChangeFeed;
  private readonly options: Required<CustomerCopiesOptions>;

  constructor(feed: ModelChangeFeed, options: CustomerCopiesOptions) {
    this.feed = feed;
    this.options = { now: Date.now, ...options };
    feed.onChange((change) => this.changed(change));
    feed.onOutage(() => this.forgetEverything());
  }

  /** The customer `id`, from a copy where one may be trusted, otherwise from `read`. */
  async find(id: string, read: () => Promise<Customer | undefined>): Promise<Customer | undefined> {
    if (!this.feed.isLive()) return read();
    const entry = this.entries.get(id);
    if (entry && entry.until > this.options.now()) return copyOf(entry.customer);
    if (entry) this.entries.delete(id);
    const changesBefore = this.changes;
    const customer = await read();
    if (customer && changesBefore === this.changes && this.feed.isLive()) this.keep(id, customer);
    return customer;
  }

  get size(): number {
    return this.entries.size;
  }

  private keep(id: string, customer: Customer): void {
    if (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(id, { customer: copyOf(customer), until: this.options.now() + this.options.maxAgeMs });
  }

  private changed(change: ModelChange): void {
    if (change.kind === '*') this.forgetEverything();
    else if (change.kind === 'Customer') {
      this.changes += 1;
      this.entries.delete(change.id);
    }
  }

  private forgetEverything(): void {
    this.changes += 1;
    this.entries.clear();
  }
}
