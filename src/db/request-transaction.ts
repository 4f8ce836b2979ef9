import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from 'koa';
import type { Knex } from './knex.ts';
import { writeInImplicitTransaction, type ImplicitTransaction } from './implicit-transaction.ts';
import { preparedRaw, statementName } from './prepared.ts';
import { transactionOutcome } from './transaction-outcome.ts';

/**
 * Owner of the request's transaction: every write one HTTP request makes commits together or not
 * at all, so that a connection lost halfway through a refresh never leaves the old refresh token
 * consumed without its successor (the app simply retries).
 *
 * - The transaction begins at the request's first write (`forWriting`). Until then reads use the
 *   pool, so requests that only read (introspection, discovery, UserInfo) never hold a connection
 *   for long; once it has begun, every read and write of the request (`forReading`, `forWriting`)
 *   goes through it, sees the request's own writes, and never waits for a second connection.
 * - It commits once the request's answer is known and before it is written: `requestTransaction`
 *   for our routes, `settleRequestTransaction` where another layer writes the answer itself
 *   (oidc-provider, see src/oidc/commit-before-answer.ts; the passkey JSON calls). A server error
 *   (5xx) or an escaping exception rolls it back; 2xx, 3xx and 4xx commit (a 400 invalid_grant
 *   after refresh-token reuse revokes the grant on purpose).
 * - A commit counts only when PostgreSQL answered COMMIT, or when, its answer lost with the
 *   connection, PostgreSQL says afterwards that the transaction committed: an owner whose
 *   statement read the transaction's id tells it (`settleLostCommitBy`; the token endpoint's one
 *   write does), and src/db/transaction-outcome.ts asks. Otherwise a connection lost underneath
 *   it, or a transaction PostgreSQL had already failed, throws CommitFailed, and the caller
 *   answers 503. Without this, a refresh committed unseen would be answered 503, and the app's
 *   retry of the same refresh token would look like reuse and end the grant.
 * - Writes an owner holds back (`beforeCommit`) are made when the request settles, inside its
 *   transaction (the writes to oidc_models, src/oidc/storage/held-writes.ts). Such work that
 *   fails fails the commit. Where the request has written nothing else and the held work is one
 *   statement, that statement is the whole transaction: it is made in PostgreSQL's implicit
 *   transaction and committed by the protocol's Sync (src/db/implicit-transaction.ts), a round
 *   trip less than BEGIN and COMMIT. It is never sent to commit on its own: a statement that
 *   commits by itself, sent just before PostgreSQL hangs, would commit when it resumes although
 *   the request had long answered 503; made before its commit, it waits for a Sync that never
 *   comes, and rolls back.
 * - Work that must not hold a transaction open waits for the commit (`afterCommit`: the activity
 *   log, back-channel logout calls) or commits what was written before it (`outsideRequestTransaction`:
 *   the argon2id hash).
 *
 * Outside a request (the CLI, the purge, the key refresh) every statement commits on its own, as
 * each owner's functions are written to allow.
 */

type AfterCommit = () => void | Promise<void>;
type Row = Record<string, unknown>;

/** Where writes held back to the request's end are made (`beforeCommit`). */
export interface WriteTarget {
  /** One statement, as a prepared statement: the request's only one, or one in its transaction. */
  statement(sql: string, bindings: readonly Knex.RawBinding[]): Promise<Row[]>;
  /** The request's transaction, begun now if need be, for work of more than one statement. */
  transaction(): Promise<Knex>;
}

/** Writes made at the request's end, with the request's transaction. */
type BeforeCommit = (target: WriteTarget) => Promise<void>;

interface RequestScope {
  readonly knex: Knex;
  /** Begun at the first write; undefined before it, and again after an early commit. */
  transaction: Promise<Knex.Transaction> | undefined;
  /** The request's one statement, made before its commit, where it wrote nothing else. */
  implicit: ImplicitTransaction | undefined;
  afterCommit: AfterCommit[];
  beforeCommit: BeforeCommit[];
  /** PostgreSQL's id of the transaction, where a statement of the request read it. */
  transactionId: string | undefined;
  /** Tables the request has written, as their owners said (`forWritingTable`); kept past an early commit. */
  written: Set<string>;
  settled: boolean;
}

const scopes = new AsyncLocalStorage<RequestScope>();

/** The request's scope for this database, while the request is still writing. */
function openScope(knex: Knex): RequestScope | undefined {
  const scope = scopes.getStore();
  return scope && !scope.settled && scope.knex === knex ? scope : undefined;
}

/** What to read with: the request's transaction once it has begun, otherwise `knex` itself. */
export async function forReading(knex: Knex): Promise<Knex> {
  const transaction = openScope(knex)?.transaction;
  return transaction ? await transaction : knex;
}

/**
 * What to write with: the request's transaction, begun now if this is the request's first write;
 * outside a request, `knex` itself. A handle already given out is handed back as it is.
 */
export async function forWriting(knex: Knex): Promise<Knex> {
  const scope = openScope(knex);
  if (!scope) return knex;
  scope.transaction ??= begin(knex);
  return scope.transaction;
}

/**
 * `forWriting`, noting that the request writes the owner's `table`: an owner that keeps copies of
 * its rows in memory reads past them for the rest of the request (`hasWritten`), so that the
 * request sees its own writes, which no other node has been told of before they commit.
 */
export async function forWritingTable(knex: Knex, table: string): Promise<Knex> {
  openScope(knex)?.written.add(table);
  return forWriting(knex);
}

/** Whether the request has written `table` (`forWritingTable`). */
export function hasWritten(knex: Knex, table: string): boolean {
  return openScope(knex)?.written.has(table) ?? false;
}

/**
 * A transaction whose BEGIN failed: knex still hands it out, completed, and reports the failure
 * only on its execution promise; it is thrown here instead, as the write's own failure.
 */
async function begin(knex: Knex): Promise<Knex.Transaction> {
  const transaction = await knex.transaction();
  if (!transaction.isCompleted()) return transaction;
  throw await transaction.executionPromise.then(
    () => new Error('the request transaction ended as it began'),
    (error: unknown) => error,
  );
}

/**
 * Holds `work` back until the request settles (see above); false outside a request, where the
 * caller writes at once. Once the request has written, its reads see held-back writes only
 * after the owner has made them: each owner flushes its own before it reads.
 */
export function beforeCommit(knex: Knex, work: BeforeCommit): boolean {
  const scope = openScope(knex);
  if (!scope) return false;
  scope.beforeCommit.push(work);
  return true;
}

/** Whether work held back now (`beforeCommit`) would still be made: the request has not settled. */
export function holdsWork(knex: Knex): boolean {
  return openScope(knex) !== undefined;
}

/**
 * Tells the request's scope PostgreSQL's id of its transaction (`pg_current_xact_id()`), as a
 * statement made inside the transaction read it: should the answer to COMMIT be lost, the
 * commit is settled by asking PostgreSQL what became of that transaction.
 */
export function settleLostCommitBy(transactionId: string): void {
  const scope = scopes.getStore();
  if (scope && !scope.settled && (scope.transaction || scope.implicit)) scope.transactionId = transactionId;
}

/** Writes with `db`: the request's transaction, or `knex` outside a request. */
export function writeTargetOf(db: Knex): WriteTarget {
  return {
    statement: async (sql, bindings) => (await preparedRaw<{ rows: Row[] }>(db, sql, bindings)).rows,
    transaction: () => Promise.resolve(db),
  };
}

/**
 * Where held-back work writes as the request settles: its first statement in the implicit
 * transaction if the request has no transaction and this is its only held work, every other
 * statement in the request's transaction, begun then if need be.
 */
function settlingTarget(scope: RequestScope, only: boolean): WriteTarget {
  const transaction = (): Promise<Knex> => {
    if (scope.implicit)
      throw new Error('the request made its one statement already, in its implicit transaction');
    scope.transaction ??= begin(scope.knex);
    return scope.transaction;
  };
  return {
    async statement(sql, bindings) {
      const name = statementName(sql);
      if (!only || scope.transaction || scope.implicit || !name) {
        return writeTargetOf(await transaction()).statement(sql, bindings);
      }
      scope.implicit = await writeInImplicitTransaction(scope.knex, name, sql, bindings);
      return scope.implicit.rows;
    },
    transaction,
  };
}

/** Makes the held-back writes, in the request's transaction (see above). */
async function makeHeldBackWrites(scope: RequestScope): Promise<void> {
  const held = scope.beforeCommit.splice(0);
  const target = settlingTarget(scope, held.length === 1);
  for (const work of held) await work(target);
}

/**
 * Runs `work` once the request's writes so far are committed, and drops it if they are rolled
 * back; outside a request, at once. The request's answer waits for it.
 */
export async function afterCommit(knex: Knex, work: AfterCommit): Promise<void> {
  const scope = openScope(knex);
  if (scope) scope.afterCommit.push(work);
  else await work();
}

/**
 * Runs `work` holding no transaction: what the request wrote before is committed first (and its
 * after-commit work run), and the request's next write begins a new transaction. For work that is
 * slow and needs no database, such as hashing a password, which must not keep a connection and
 * row locks from everyone else meanwhile.
 */
export async function outsideRequestTransaction<T>(knex: Knex, work: () => Promise<T>): Promise<T> {
  const scope = openScope(knex);
  if (scope) await makeHeldBackWrites(scope);
  if (scope?.transaction || scope?.implicit) {
    const open = { begun: scope.transaction, implicit: scope.implicit, transactionId: scope.transactionId };
    scope.transaction = undefined;
    scope.implicit = undefined;
    scope.transactionId = undefined;
    await commitOpen(scope.knex, open);
    await runAll(scope.afterCommit.splice(0));
  }
  return work();
}

/** A commit that did not happen: nothing the request wrote since its transaction began is stored. */
class CommitFailed extends Error {
  override name = 'CommitFailed';
}

interface CommitAnswer {
  response: { command: string };
}

// knex resolves a commit with the driver's answer to COMMIT, and with nothing when COMMIT failed.
function isCommitAnswer(answer: unknown): answer is CommitAnswer {
  if (typeof answer !== 'object' || answer === null || !('response' in answer)) return false;
  const { response } = answer;
  return typeof response === 'object' && response !== null && 'command' in response;
}

/**
 * Commits, and throws CommitFailed unless PostgreSQL answered COMMIT or, the answer lost, says
 * on another connection that `transactionId` committed. It answers ROLLBACK when a statement of
 * the transaction had failed; and a COMMIT on a connection that was lost fails, which knex
 * reports on the transaction's execution promise while resolving the commit itself.
 */
async function commit(begun: Promise<Knex.Transaction>, knex: Knex, transactionId?: string): Promise<void> {
  const transaction = await begun;
  const answer: unknown = await transaction.commit();
  if (isCommitAnswer(answer) && answer.response.command === 'COMMIT') return;
  if (!isCommitAnswer(answer) && transactionId) {
    if ((await transactionOutcome(knex, transactionId)) === 'committed') return;
  }
  const cause: unknown = await transaction.executionPromise.then(
    () => undefined,
    (error: unknown) => error,
  );
  const said = isCommitAnswer(answer) ? answer.response.command : 'nothing';
  throw new CommitFailed(`the request's transaction was not committed (PostgreSQL answered ${said})`, {
    cause,
  });
}

/**
 * Sends the implicit transaction's Sync, and throws CommitFailed unless PostgreSQL answered it
 * or, its answer lost, says that `transactionId` committed.
 */
async function commitImplicit(
  implicit: ImplicitTransaction,
  knex: Knex,
  transactionId?: string,
): Promise<void> {
  try {
    await implicit.commit();
  } catch (cause) {
    if (transactionId && (await transactionOutcome(knex, transactionId)) === 'committed') return;
    throw new CommitFailed("the request's one statement was not committed", { cause });
  }
}

interface OpenTransaction {
  begun: Promise<Knex.Transaction> | undefined;
  implicit: ImplicitTransaction | undefined;
  transactionId: string | undefined;
}

async function commitOpen(knex: Knex, open: OpenTransaction): Promise<void> {
  if (open.implicit) await commitImplicit(open.implicit, knex, open.transactionId);
  else if (open.begun) await commit(open.begun, knex, open.transactionId);
}

/**
 * Rolls back without making the answer wait: PostgreSQL drops the writes either way, and on a
 * connection that is cut or hanging the ROLLBACK itself would only fail, or wait for its timeout.
 */
function rollBack(begun: Promise<Knex.Transaction>): void {
  begun
    .then(
      (transaction) => transaction.rollback(),
      () => undefined,
    )
    .catch(() => undefined);
}

async function runAll(work: AfterCommit[]): Promise<void> {
  for (const each of work) await each();
}

/**
 * Commits or rolls back the request's transaction, once; a later call does nothing. After it the
 * request's statements, if any, commit on their own. Throws CommitFailed when the commit failed.
 */
export async function settleRequestTransaction(outcome: 'commit' | 'rollback'): Promise<void> {
  const scope = scopes.getStore();
  if (!scope || scope.settled) return;
  if (outcome === 'commit') {
    try {
      await makeHeldBackWrites(scope);
    } catch (error) {
      await settleRequestTransaction('rollback');
      throw error;
    }
  }
  scope.settled = true;
  const open = { begun: scope.transaction, implicit: scope.implicit, transactionId: scope.transactionId };
  const afterwards = scope.afterCommit.splice(0);
  scope.beforeCommit.length = 0;
  if (outcome === 'rollback') {
    if (open.begun) rollBack(open.begun);
    open.implicit?.rollBack();
    return;
  }
  await commitOpen(scope.knex, open);
  await runAll(afterwards);
}

/** Whether the answer commits the request's writes: everything but a server error. */
export function commitsWrites(status: number): boolean {
  return status < 500;
}

/**
 * The Koa middleware: one request, one scope. It commits once the routes below have answered, and
 * before Koa writes the answer; a commit that failed throws, and the error pages above answer 503.
 * The answer as it stood (a redirect, cookies for a session that was not stored) is dropped.
 */
export function requestTransaction(knex: Knex): Middleware {
  const newScope = (): RequestScope => ({
    knex,
    transaction: undefined,
    implicit: undefined,
    afterCommit: [],
    beforeCommit: [],
    transactionId: undefined,
    written: new Set(),
    settled: false,
  });
  return (ctx, next) =>
    scopes.run(newScope(), async () => {
      try {
        await next();
      } catch (error) {
        await settleRequestTransaction('rollback');
        throw error;
      }
      try {
        await settleRequestTransaction(commitsWrites(ctx.status) ? 'commit' : 'rollback');
      } catch (error) {
        ctx.remove('Location');
        ctx.remove('Set-Cookie');
        throw error;
      }
    });
}
