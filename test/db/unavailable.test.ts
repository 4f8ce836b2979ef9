import { describe, expect, test } from '@jest/globals';
import { isDatabaseUnavailable } from '../../src/db/unavailable.ts';

/** Which errors mean "the database is away" (a 503 to repeat later) and which are a bug (a 500). */

function withCode(code: string, message = 'failed'): Error {
  return Object.assign(new Error(message), { code });
}

function knexTimeout(): Error {
  const error = new Error('Knex: Timeout acquiring a connection. The pool is probably full.');
  error.name = 'KnexTimeoutError';
  return error;
}

describe('isDatabaseUnavailable', () => {
  test.each([
    ['a refused connection', withCode('ECONNREFUSED')],
    ['a reset connection', withCode('ECONNRESET')],
    [
      'an administrator shutdown (57P01)',
      withCode('57P01', 'terminating connection due to administrator command'),
    ],
    ['a server starting up (57P03)', withCode('57P03', 'the database system is starting up')],
    ['a connection exception (08006)', withCode('08006')],
    ['a socket closed under a query', new Error('Connection terminated unexpectedly')],
    ['a connection attempt timed out', new Error('Connection terminated due to connection timeout')],
    ["knex's pool giving up", knexTimeout()],
    ['a silent server outliving the client-side timeout', new Error('Query read timeout')],
    ['a silent server outliving the connect timeout', new Error('timeout expired')],
    [
      'a query on a connection ended after a timeout',
      new Error('select 1 - Client was closed and is not queryable'),
    ],
    ['a refusal on every address', new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')])],
    ['a wrapped refusal', new Error('could not load', { cause: withCode('ECONNREFUSED') })],
  ])('%s is', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  test.each([
    ['a syntax error (42601)', withCode('42601', 'syntax error at or near "SELEC"')],
    ['a unique violation (23505)', withCode('23505')],
    ['a statement timeout (57014)', withCode('57014', 'canceling statement due to statement timeout')],
    ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['something that is not an error', 'ECONNREFUSED'],
    ['nothing', undefined],
  ])('%s is not', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});
