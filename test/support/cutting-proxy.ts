import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy between Passbook and PostgreSQL that can cut a connection just before a given
 * statement reaches the server, as a network failure or a killed backend would: Passbook changes
 * nothing for it. It reads the client's side of PostgreSQL's protocol, where every statement
 * starts with one message: Query ('Q') or Parse ('P').
 */

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
  /** Stops counting and cutting. */
  relax(): void;
  /** The SQL of every statement counted since count() or cutAt(). */
  readonly statements: readonly string[];
  /** The statement the last cut stopped, once it has happened. */
  readonly cut: CutStatement | undefined;
  close(): Promise<void>;
}

const STARTUP_DONE = Symbol('startup done');

/** The SQL a Query or Parse message carries. */
function statementText(type: number, body: Buffer): string {
  // Parse: a statement name, then the query; Query: the query. Both NUL-terminated.
  const start = type === 0x50 ? body.indexOf(0) + 1 : 0;
  const end = body.indexOf(0, start);
  return body.toString('utf8', start, end < 0 ? body.length : end);
}

export async function startCuttingProxy(databaseUrl: string): Promise<CuttingProxy> {
  const target = new URL(databaseUrl);
  let counting = false;
  let cutAt: number | undefined;
  let statements: string[] = [];
  let cut: CutStatement | undefined;
  const sockets = new Set<Socket>();

  /** Forwards what may go through; returns false when the connection is to be cut. */
  function inspect(pending: Buffer, state: { startup: boolean | typeof STARTUP_DONE }) {
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
      if (counting && (type === 0x51 || type === 0x50)) {
        const sql = statementText(type, pending.subarray(offset + 5, offset + length));
        statements.push(sql);
        if (statements.length === cutAt) {
          cut = { sql };
          cutAt = undefined;
          return { forward: Buffer.concat(forward), rest: Buffer.alloc(0), cutHere: true };
        }
      }
      forward.push(pending.subarray(offset, offset + length));
      offset += length;
    }
    return { forward: Buffer.concat(forward), rest: pending.subarray(offset), cutHere: false };
  }

  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const state: { startup: boolean | typeof STARTUP_DONE } = { startup: false };
    let pending: Buffer = Buffer.alloc(0);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('data', (chunk: Buffer) => {
      const { forward, rest, cutHere } = inspect(Buffer.concat([pending, chunk]), state);
      pending = rest;
      if (forward.length) upstream.write(forward);
      if (cutHere) end();
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
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
    relax() {
      counting = false;
      cutAt = undefined;
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
