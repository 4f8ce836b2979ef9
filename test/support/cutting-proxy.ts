import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy between Passbook and PostgreSQL that can cut a connection just before a given
 * statement reaches the server, as a network failure or a killed backend would: Passbook changes
 * nothing for it. It reads the client's side of PostgreSQL's protocol, where every statement
 * is one Query ('Q') or one Bind ('B') of a statement parsed earlier on the connection ('P'),
 * perhaps long before: a prepared statement is parsed once and bound at each run. A statement
 * sent with Flush ('H') instead of Sync ('S') waits for its commit: the Sync that follows it
 * alone is counted as a statement of its own, `COMMIT_BY_SYNC`.
 */

/** What the proxy calls the Sync that commits a statement made before it (src/db/implicit-transaction.ts). */
export const COMMIT_BY_SYNC = 'Sync, committing the statement before it';

export interface CutStatement {
  /** The statement's SQL, as the client sent it. */
  sql: string;
}

export interface CuttingProxy {
  /** The database URL through the proxy. */
  url: string;
  /** Counts the statements sent from now on, on every connection, without cutting. */
  count(): void;
  /** Counts from now on, and cuts the connection that carries statement `n` (1 is the next one). */
  cutAt(n: number): void;
  /**
   * Counts from now on, and lets statement `n` reach PostgreSQL whole (up to its Sync) but cuts
   * the connection before its answer: the client cannot know whether it took effect.
   */
  loseAnswerAt(n: number): void;
  /** Stops counting and cutting. */
  relax(): void;
  /** The SQL of every statement counted since count() or cutAt(). */
  readonly statements: readonly string[];
  /** The statement the last cut stopped, once it has happened. */
  readonly cut: CutStatement | undefined;
  close(): Promise<void>;
}

const STARTUP_DONE = Symbol('startup done');

interface ConnectionState {
  startup: boolean | typeof STARTUP_DONE;
  /** Set once the statement whose answer is to be lost is on its way: the next Sync ends it. */
  losingAnswer: boolean;
  /** The SQL of each statement parsed on the connection, by name ('' is the unnamed one). */
  parsed: Map<string, string>;
  /** A Bind since the last Flush or Sync. */
  bound: boolean;
  /** A statement flushed and not yet synced: the next Sync, with no Bind before it, commits it. */
  awaitingSync: boolean;
}

const QUERY = 0x51;
const PARSE = 0x50;
const BIND = 0x42;
const SYNC = 0x53;
const FLUSH = 0x48;

/** The NUL-terminated string at `start`, and where the next field begins. */
function cString(body: Buffer, start: number): [string, number] {
  const end = body.indexOf(0, start);
  const stop = end < 0 ? body.length : end;
  return [body.toString('utf8', start, stop), stop + 1];
}

/** A Parse message's statement name and SQL. */
function parsed(body: Buffer): [string, string] {
  const [name, next] = cString(body, 0);
  return [name, cString(body, next)[0]];
}

/** The statement a Bind message runs: its name comes after the portal's. */
function boundName(body: Buffer): string {
  const [, next] = cString(body, 0);
  return cString(body, next)[0];
}

export async function startCuttingProxy(databaseUrl: string): Promise<CuttingProxy> {
  const target = new URL(databaseUrl);
  let counting = false;
  let cutAt: number | undefined;
  let loseAnswerAt: number | undefined;
  let statements: string[] = [];
  let cut: CutStatement | undefined;
  const sockets = new Set<Socket>();

  /** Forwards what may go through; returns false when the connection is to be cut. */
  function inspect(pending: Buffer, state: ConnectionState) {
    let offset = 0;
    const forward: Buffer[] = [];
    for (;;) {
      if (state.startup !== STARTUP_DONE) {
        // The startup message has no type byte: its length, then the protocol version.
        if (pending.length - offset < 4) break;
        const length = pending.readInt32BE(offset);
        if (pending.length - offset < length) break;
        forward.push(pending.subarray(offset, offset + length));
        offset += length;
        state.startup = STARTUP_DONE;
        continue;
      }
      if (pending.length - offset < 5) break;
      const type = pending[offset] ?? 0;
      const length = pending.readInt32BE(offset + 1) + 1;
      if (pending.length - offset < length) break;
      const body = pending.subarray(offset + 5, offset + length);
      if (type === PARSE) {
        const [name, text] = parsed(body);
        state.parsed.set(name, text);
      }
      const commits = type === SYNC && state.awaitingSync && !state.bound;
      const sql =
        type === QUERY
          ? cString(body, 0)[0]
          : type === BIND
            ? state.parsed.get(boundName(body))
            : commits
              ? COMMIT_BY_SYNC
              : undefined;
      if (type === BIND) state.bound = true;
      if (type === FLUSH && state.bound) state.awaitingSync = true;
      if (type === FLUSH || type === SYNC) state.bound = false;
      if (type === SYNC) state.awaitingSync = false;
      if (counting && sql !== undefined) {
        statements.push(sql);
        if (statements.length === cutAt) {
          cut = { sql };
          cutAt = undefined;
          return { forward: Buffer.concat(forward), rest: Buffer.alloc(0), cutHere: true, lastSent: false };
        }
        if (statements.length === loseAnswerAt) {
          cut = { sql };
          loseAnswerAt = undefined;
          state.losingAnswer = true;
        }
      }
      forward.push(pending.subarray(offset, offset + length));
      offset += length;
      if (state.losingAnswer && (type === SYNC || type === QUERY || type === FLUSH)) {
        return { forward: Buffer.concat(forward), rest: Buffer.alloc(0), cutHere: false, lastSent: true };
      }
    }
    return {
      forward: Buffer.concat(forward),
      rest: pending.subarray(offset),
      cutHere: false,
      lastSent: false,
    };
  }

  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const state: ConnectionState = {
      startup: false,
      losingAnswer: false,
      parsed: new Map(),
      bound: false,
      awaitingSync: false,
    };
    let answersDropped = false;
    let pending: Buffer = Buffer.alloc(0);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('data', (chunk: Buffer) => {
      if (answersDropped) return;
      const { forward, rest, cutHere, lastSent } = inspect(Buffer.concat([pending, chunk]), state);
      pending = rest;
      if (lastSent) {
        // PostgreSQL gets the whole statement, then the end of the connection; its answer is dropped.
        answersDropped = true;
        upstream.end(forward);
        return;
      }
      if (forward.length) upstream.write(forward);
      if (cutHere) end();
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!answersDropped) client.write(chunk);
    });
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  const count = () => {
    counting = true;
    cutAt = undefined;
    loseAnswerAt = undefined;
    statements = [];
    cut = undefined;
  };
  return {
    url: url.href,
    count,
    cutAt(n) {
      count();
      cutAt = n;
    },
    loseAnswerAt(n) {
      count();
      loseAnswerAt = n;
    },
    relax() {
      counting = false;
      cutAt = undefined;
      loseAnswerAt = undefined;
    },
    get statements() {
      return statements;
    },
    get cut() {
      return cut;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
