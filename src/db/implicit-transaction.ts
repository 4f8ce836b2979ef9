import pg from 'pg';
import { retireConnection, withPooledConnection, type Knex } from './knex.ts';

/**
 * Owner of the implicit transaction: a request whose only write is one statement (a refresh, a
 * code exchange) makes it, and commits it, in two round trips to PostgreSQL rather than the
 * three of BEGIN, the statement and COMMIT.
 *
 * The statement goes out in the extended protocol's messages (Parse once per connection, Bind,
 * Describe, Execute) followed by Flush instead of Sync. PostgreSQL runs it at once, in a
 * transaction of its own that stays open until the connection's next Sync: the Sync is the
 * commit, and the statement's effects are invisible to everyone else until then. A connection
 * lost before the Sync, or a server that hangs before it and resumes after the connection was
 * given up, rolls the statement back, exactly as a BEGIN whose COMMIT was never sent would. A
 * statement PostgreSQL failed, a client-side timeout and a rollback end the connection, so that
 * its transaction can only ever be rolled back, and the pool never lends it out again.
 *
 * This reaches under pg's query interface: the object below is a pg "submittable", driving the
 * connection's protocol messages itself, and it shares pg's record of the statements a connection
 * has already parsed, so that a statement named for `src/db/prepared.ts` is parsed once whether
 * pg's own queries or this one sent it first. Those records are pg's, read here only.
 */

type Row = Record<string, unknown>;
type Parameter = string | Buffer | null;

/** The messages of pg's Connection that the statement sends, and its record of parsed names. */
interface ProtocolConnection {
  parse(message: { text: string; name: string; types: number[] }): void;
  bind(message: { statement: string; values: Parameter[] }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(message: { portal: string; rows: number }): void;
  flush(): void;
  sync(): void;
  sendCopyFail(message: string): void;
  stream: { cork?: () => void; uncork?: () => void };
  parsedStatements: Record<string, string | undefined>;
  submittedNamedStatements: Record<string, string | undefined>;
}

interface FieldDescription {
  name: string;
  dataTypeID: number;
}

/** Whatever pg resolves a query with from a timeout or a dead socket, or PostgreSQL's own error. */
function asError(failure: unknown): Error {
  return failure instanceof Error ? failure : new Error('the statement failed', { cause: failure });
}

/** A parameter in PostgreSQL's text format, as pg's own queries send it. */
function toParameter(value: Knex.RawBinding): Parameter {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return JSON.stringify(value);
}

/** A column's value as pg's own queries parse it, by its type. */
function parseText(dataTypeID: number, value: string): unknown {
  // pg-types declares its parsers as `any`; each takes the text and answers the value.
  const parse = pg.types.getTypeParser(dataTypeID, 'text') as (text: string) => unknown;
  return parse(value);
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: Error) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Each is awaited in turn; a failure before it is awaited must not count as unhandled.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * The statement, then its commit, as one submittable of pg's client: the client hands the
 * connection's messages to it from Parse to the Sync's ReadyForQuery, and lends the connection to
 * nothing else meanwhile.
 */
class StatementBeforeSync {
  /** Read by pg's client, which records a named statement as parsed when PostgreSQL says so. */
  readonly name: string;
  readonly text: string;
  /** Set by pg's client to end its read timeout (`query_timeout`); called once the commit is answered. */
  callback: ((error: Error | null) => void) | undefined;
  readonly written = deferred<Row[]>();
  readonly committed = deferred<void>();
  private readonly values: Parameter[];
  private connection: ProtocolConnection | undefined;
  private fields: FieldDescription[] = [];
  private readonly rows: Row[] = [];
  private state: 'writing' | 'written' | 'committing' | 'done' = 'writing';

  constructor(name: string, text: string, values: Parameter[]) {
    this.name = name;
    this.text = text;
    this.values = values;
  }

  submit(connection: ProtocolConnection): null {
    this.connection = connection;
    connection.stream.cork?.();
    try {
      const parsed = connection.parsedStatements[this.name] ?? connection.submittedNamedStatements[this.name];
      if (parsed === undefined) {
        connection.parse({ text: this.text, name: this.name, types: [] });
        connection.submittedNamedStatements[this.name] = this.text;
      }
      connection.bind({ statement: this.name, values: this.values });
      connection.describe({ type: 'P', name: '' });
      connection.execute({ portal: '', rows: 0 });
      connection.flush();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  /** Sends the Sync that commits the statement; answered by ReadyForQuery, or an error. */
  commit(): Promise<void> {
    // Failed since it was answered (PostgreSQL shut the connection, say): that failure is the answer.
    if (this.state === 'done') return this.committed.promise;
    if (this.state !== 'written' || !this.connection)
      throw new Error('commit before the statement was answered');
    this.state = 'committing';
    this.connection.sync();
    return this.committed.promise;
  }

  handleRowDescription(message: { fields: FieldDescription[] }): void {
    this.fields = message.fields;
  }

  handleDataRow(message: { fields: (string | null)[] }): void {
    const row: Row = {};
    this.fields.forEach((field, index) => {
      const value = message.fields[index];
      row[field.name] = value === null || value === undefined ? null : parseText(field.dataTypeID, value);
    });
    this.rows.push(row);
  }

  handleCommandComplete(): void {
    this.state = 'written';
    this.written.resolve(this.rows);
  }

  handleEmptyQuery(): void {
    this.handleCommandComplete();
  }

  handlePortalSuspended(): void {
    this.handleError(new Error('the statement returned more rows than it was sent to'));
  }

  handleCopyInResponse(connection: ProtocolConnection): void {
    connection.sendCopyFail('the statement may not copy');
  }

  handleCopyData(): void {}

  handleReadyForQuery(): void {
    if (this.state !== 'committing') {
      this.handleError(new Error('PostgreSQL ended the statement before its commit was sent'));
      return;
    }
    this.state = 'done';
    this.committed.resolve();
    this.callback?.(null);
  }

  /** PostgreSQL's error, the client's read timeout, or the connection's loss: nothing is committed. */
  handleError(failure: unknown): void {
    if (this.state === 'done') return;
    const error = asError(failure);
    this.state = 'done';
    this.written.reject(error);
    this.committed.reject(error);
    this.callback?.(error);
  }
}

interface DriverClient {
  query(submittable: StatementBeforeSync): unknown;
}

function isDriverClient(connection: unknown): connection is DriverClient {
  return typeof connection === 'object' && connection !== null && 'query' in connection;
}

/** The statement made, its commit not yet sent: `commit` sends it, `rollBack` ends the connection. */
export interface ImplicitTransaction {
  /** The statement's rows. */
  readonly rows: Row[];
  /** Resolves once PostgreSQL answered the Sync; rejects if it failed or its answer was lost. */
  commit(): Promise<void>;
  /** Drops the statement's effects without waiting: the connection is ended, never reused. */
  rollBack(): void;
}

/**
 * Makes `sql` (knex's `?` placeholders) on a connection of its own from knex's pool, as the
 * statement named `name`, and holds the connection until its commit or rollback.
 */
export async function writeInImplicitTransaction(
  knex: Knex,
  name: string,
  sql: string,
  bindings: readonly Knex.RawBinding[],
): Promise<ImplicitTransaction> {
  const native = knex
    .raw(sql, [...bindings])
    .toSQL()
    .toNative();
  const statement = new StatementBeforeSync(name, native.sql, native.bindings.map(toParameter));
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const lent = deferred<unknown>();
  const held = withPooledConnection(knex, async (connection) => {
    lent.resolve(connection);
    await released;
  });
  held.catch((error: unknown) => lent.reject(asError(error)));
  const connection = await lent.promise;
  if (!isDriverClient(connection)) throw new Error('a pooled connection that cannot run a statement');
  void connection.query(statement);
  const finish = async (ended: boolean): Promise<void> => {
    if (ended) retireConnection(connection);
    release();
    await held.catch(() => undefined);
  };
  let rows: Row[];
  try {
    rows = await statement.written.promise;
  } catch (error) {
    await finish(true);
    throw error;
  }
  return {
    rows,
    async commit() {
      try {
        await statement.commit();
      } catch (error) {
        await finish(true);
        throw error;
      }
      await finish(false);
    },
    rollBack() {
      void finish(true);
    },
  };
}
