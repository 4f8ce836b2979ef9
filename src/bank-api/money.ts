/**
 * Money and account numbers as the bank API reads and writes them. Amounts travel as decimal
 * strings ("12.50") and are kept as whole cents, so no amount ever passes through a float.
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

const IBAN_PATTERN = /^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/;

/** The ISO 13616 check: the IBAN, rearranged and read as a number, is 1 modulo 97. */
function ibanRemainder(rearranged: string): number {
  let remainder = 0;
  for (const character of rearranged) {
    const value = Number.parseInt(character, 36);
    remainder = value >= 10 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
  }
  return remainder;
}

/** The IBAN without spaces, in capitals, when its format and check digits are right. */
export function normaliseIban(text: string): string | undefined {
  const compact = text.replace(/ /g, '').toUpperCase();
  if (!IBAN_PATTERN.test(compact)) return undefined;
  return ibanRemainder(compact.slice(4) + compact.slice(0, 4)) === 1 ? compact : undefined;
}

/** An IBAN for a country and basic bank account number, with the check digits worked out. */
export function ibanFor(country: string, bban: string): string {
  const check = 98 - ibanRemainder(`${bban}${country}00`);
  return `${country}${String(check).padStart(2, '0')}${bban}`;
}
