import { randomBytes, timingSafeEqual } from 'node:crypto';
import { HOTP, Secret, TOTP } from 'otpauth';

/**
 * Authenticator-app codes (TOTP, RFC 6238) at the defaults every authenticator app understands:
 * HMAC-SHA-1, 6 digits, 30-second steps. Pure functions; second-factors.ts keeps the secrets.
 */

const TOTP_ISSUER = 'Passbook Bank';
const ALGORITHM = 'SHA1';
const DIGITS = 6;
const PERIOD_SECONDS = 30;
/** Steps of clock drift accepted either way. */
const DRIFT_STEPS = 1;
/** 160 bits, the HMAC-SHA-1 key length RFC 4226 recommends. */
const SECRET_BYTES = 20;

export const CODE_PATTERN = /^\d{6}$/;

export function newTotpSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

function otpSecret(secret: Buffer): Secret {
  return Secret.fromHex(secret.toString('hex'));
}

/** The TOTP time-step `now` falls in. */
function timeStep(now: Date): number {
  return Math.floor(now.getTime() / 1000 / PERIOD_SECONDS);
}

function codeAtStep(secret: Buffer, step: number): string {
  return HOTP.generate({ secret: otpSecret(secret), algorithm: ALGORITHM, digits: DIGITS, counter: step });
}

/**
 * The time-step whose code `code` is, within the drift allowed around `now`; undefined if none.
 * Every candidate is compared, in constant time, whatever matched first.
 */
export function matchingStep(secret: Buffer, code: string, now: Date): number | undefined {
  if (!CODE_PATTERN.test(code)) return undefined;
  const offered = Buffer.from(code);
  const current = timeStep(now);
  let matched: number | undefined;
  for (let step = current - DRIFT_STEPS; step <= current + DRIFT_STEPS; step += 1) {
    if (timingSafeEqual(Buffer.from(codeAtStep(secret, step)), offered)) matched ??= step;
  }
  return matched;
}

/** The secret as authenticator apps take it when typed in: base32. */
export function base32Secret(secret: Buffer): string {
  return otpSecret(secret).base32;
}

export function secretFromBase32(text: string): Buffer {
  return Buffer.from(Secret.fromBase32(text.replace(/\s+/g, '').toUpperCase()).bytes);
}

/** The base32 secret in groups of four, for reading off the screen. */
export function groupedForTyping(base32: string): string {
  return (base32.match(/.{1,4}/g) ?? []).join(' ');
}

/** The otpauth:// URI a QR code carries: the bank's name as issuer, the username as label. */
export function otpauthUri(secret: Buffer, username: string): string {
  return new TOTP({
    issuer: TOTP_ISSUER,
    label: username,
    secret: otpSecret(secret),
    algorithm: ALGORITHM,
    digits: DIGITS,
    period: PERIOD_SECONDS,
  }).toString();
}
