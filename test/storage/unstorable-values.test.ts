import { describe, expect, test } from '@jest/globals';
import { errors } from 'oidc-provider';
import { findClientMetadata } from '../../src/clients/clients.ts';
import { findCustomerByUsername } from '../../src/customers/customers.ts';
import { MAX_IDENTIFIER_LENGTH, isStorableJson, isStorableText } from '../../src/db/storable.ts';
import { PostgresAdapter } from '../../src/oidc/storage/adapter.ts';
import { useTestPassbook } from '../support/passbook.ts';

/**
 * The owners of SQL refuse what PostgreSQL cannot store on their own, whatever the HTTP layer in
 * front of them checked: a lookup of such a value finds nothing, a write of one is the caller's
 * error (invalid_request), and no query is sent that PostgreSQL would refuse.
 */

const passbook = useTestPassbook();

const UNSTORABLE = ['\u0000', 'abc\u0000', '\uD800', 'x\uDFFFy', 'a'.repeat(MAX_IDENTIFIER_LENGTH + 1)];

describe('isStorableText and isStorableJson', () => {
  test('accept text PostgreSQL keeps as it is, paired surrogates included', () => {
    expect(isStorableText('budget-buddy', 64)).toBe(true);
    expect(isStorableText('emoji \u{1F4A9}', 64)).toBe(true);
    expect(isStorableJson({ state: 'ok', nested: ['\u{1F4A9}', 1, null, { a: true }] })).toBe(true);
  });

  test('refuse NUL, lone surrogates, too long, and anything but a string', () => {
    for (const value of UNSTORABLE) expect(isStorableText(value, MAX_IDENTIFIER_LENGTH)).toBe(false);
    expect(isStorableText(42, 64)).toBe(false);
    expect(isStorableJson({ params: { state: 'a\u0000' } })).toBe(false);
    expect(isStorableJson({ ['key\u0000']: 'value' })).toBe(false);
    expect(isStorableJson(['\uD800'])).toBe(false);
  });
});

describe('the adapter', () => {
  test('finds nothing by an id, uid or user code that cannot be stored', async () => {
    for (const kind of ['Session', 'Interaction', 'AccessToken', 'Grant']) {
      const adapter = new PostgresAdapter(passbook.knex, kind);
      for (const value of UNSTORABLE) {
        await expect(adapter.find(value)).resolves.toBeUndefined();
        await expect(adapter.findByUid(value)).resolves.toBeUndefined();
        await expect(adapter.findByUserCode(value)).resolves.toBeUndefined();
      }
    }
  });

  test('refuses to write one, or a payload with a NUL anywhere, as invalid_request', async () => {
    const adapter = new PostgresAdapter(passbook.knex, 'Interaction');
    for (const value of UNSTORABLE) {
      await expect(adapter.upsert(value, { jti: 'x' }, 60)).rejects.toBeInstanceOf(errors.InvalidRequest);
      await expect(adapter.consume(value)).rejects.toBeInstanceOf(errors.InvalidRequest);
      await expect(adapter.destroy(value)).rejects.toBeInstanceOf(errors.InvalidRequest);
      await expect(adapter.revokeByGrantId(value)).rejects.toBeInstanceOf(errors.InvalidRequest);
    }
    const id = `unstorable-${Date.now()}`;
    await expect(adapter.upsert(id, { params: { state: '\u0000' } }, 60)).rejects.toBeInstanceOf(
      errors.InvalidRequest,
    );
    await expect(adapter.upsert(id, { uid: '\uD800' }, 60)).rejects.toBeInstanceOf(errors.InvalidRequest);
    await expect(adapter.find(id)).resolves.toBeUndefined();
  });
});

describe('the client and customer lookups', () => {
  test('find no client and no customer by a value that cannot be stored', async () => {
    for (const value of UNSTORABLE) {
      await expect(findClientMetadata(passbook.knex, value)).resolves.toBeUndefined();
      await expect(findCustomerByUsername(passbook.knex, value)).resolves.toBeUndefined();
    }
  });
});
