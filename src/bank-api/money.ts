/**
 * Money as the bank API reads and writes it. Amounts travel as decimal strings ("12.50") and are
 * kept as whole cents, so no amount ever passes through a float. IBANs: src/payments/iban.ts.
 */

const AMOUNT_PATTERN = /^(0|[1-9]\d{0,8})(\.\d{1,2})?$/;

/** "12.5" → 1250; undefined for anything that is not a plain non-negative decimal amount. */
export function parseAmount(text: string): number | undefined {
  if (!AMOUNT_PATTERN.test(text)) return undefined;
  const [units = '0', cents = ''] = text.split('.');
  return Number(units) * 100 + Number(cents.padEnd(2, '0'));
}

/** 1250 → "12.50", -99 → "-0.99". */
export function formatAmount(minor: number): string {
  const sign = minor < 0 ? '-' : '';
  const absolute = Math.abs(minor);
  return `${sign}${Math.floor(absolute / 100)}.${String(absolute % 100).padStart(2, '0')}`;
}
