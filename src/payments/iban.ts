/**
 * IBANs (ISO 13616), as Passbook's payment screen and the bank API both read them: the electronic
 * form (capitals, no spaces), its check digits, and the grouping by four a person reads.
 */

const ELECTRONIC_FORM = /^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/;

/** The ISO 13616 check: the IBAN, rearranged and read as a number, is 1 modulo 97. */
function ibanRemainder(rearranged: string): number {
  let remainder = 0;
  for (const character of rearranged) {
    const value = Number.parseInt(character, 36);
    remainder = (value >= 10 ? remainder * 100 + value : remainder * 10 + value) % 97;
  }
  return remainder;
}

/** Whether `iban` is in electronic form with right check digits. */
export function isValidIban(iban: string): boolean {
  return ELECTRONIC_FORM.test(iban) && ibanRemainder(iban.slice(4) + iban.slice(0, 4)) === 1;
}

/** The IBAN without spaces, in capitals, when its format and check digits are right. */
export function normaliseIban(text: string): string | undefined {
  const compact = text.replace(/ /g, '').toUpperCase();
  return isValidIban(compact) ? compact : undefined;
}

/** An IBAN for a country and basic bank account number, with the check digits worked out. */
export function ibanFor(country: string, bban: string): string {
  const check = 98 - ibanRemainder(`${bban}${country}00`);
  return `${country}${String(check).padStart(2, '0')}${bban}`;
}

/** "NL91ABNA0417164300" → "NL91 ABNA 0417 1643 00", as printed for a person. */
export function groupedIban(iban: string): string {
  return iban.replace(/(.{4})(?=.)/g, '$1 ');
}
