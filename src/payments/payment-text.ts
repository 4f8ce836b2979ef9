/**
 * The rule for the text of a payment (the creditor's name, the reference), the same for the
 * consent screen that shows it and the bank API that books it, so that whatever a customer can
 * approve the bank can read: 1 to `maxLength` characters (code points), not only spaces, and no
 * control, format (bidi overrides), surrogate, private-use or unassigned characters, nor line or
 * paragraph separators. Never trimmed: it is compared exactly.
 */

const NOT_PLAIN = /[\p{C}\p{Zl}\p{Zp}]/u;

export function isPaymentText(value: string, maxLength: number): boolean {
  const length = [...value].length;
  return length >= 1 && length <= maxLength && value.trim() !== '' && !NOT_PLAIN.test(value);
}
