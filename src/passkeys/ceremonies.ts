import { randomBytes } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Knex } from '../db/knex.ts';
import type { Logger } from '../log.ts';
import {
  addPasskey,
  consumeChallenge,
  findPasskeyByCredentialId,
  passkeysOfCustomer,
  recordPasskeyUse,
  storeChallenge,
  type ChallengePurpose,
  type DeviceType,
  type Passkey,
} from './passkeys.ts';

/**
 * The WebAuthn ceremonies behind passkeys: adding one (registration) and signing in with one
 * (authentication), checked by @simplewebauthn/server against the issuer's own origin. Every
 * passkey is a discoverable credential with user verification, so signing in with one needs no
 * username and proves two factors: the device, and the fingerprint, face or PIN that unlocked it.
 */

/** How long a challenge may be answered: long enough for a fingerprint, too short to hoard. */
const CHALLENGE_TTL_SECONDS = 180;
const CEREMONY_TIMEOUT_MS = 120_000;
const RP_NAME = 'Passbook Bank';

/**
 * RFC 8176 methods for a passkey sign-in: a key bound to one device is a hardware key (`hwk`),
 * one synced between devices a software key (`swk`); user verification makes either `mfa`.
 */
export function amrFor(deviceType: DeviceType): string[] {
  return [deviceType === 'singleDevice' ? 'hwk' : 'swk', 'mfa'];
}

export interface PasskeyOwner {
  id: string;
  username: string;
  name: string | null;
}

export type RegistrationOutcome = { ok: true; passkey: Passkey } | { ok: false; reason: string };
export type AuthenticationOutcome =
  | { ok: true; customerId: string; amr: string[]; passkey: Passkey }
  | { ok: false; reason: string; customerId?: string | undefined };

export interface PasskeyCeremonies {
  /** What the browser's navigator.credentials.create() needs; the challenge is bound to `binding`. */
  registrationOptions(owner: PasskeyOwner, binding: string): Promise<PublicKeyCredentialCreationOptionsJSON>;
  /** Checks the browser's answer to registrationOptions and stores the passkey under `name`. */
  register(
    customerId: string,
    binding: string,
    name: string,
    response: unknown,
  ): Promise<RegistrationOutcome>;
  /** What navigator.credentials.get() needs: no allowed list, the authenticator offers its passkeys. */
  authenticationOptions(binding: string): Promise<PublicKeyCredentialRequestOptionsJSON>;
  /** Checks an assertion against the challenge issued to `binding` and the stored passkey. */
  authenticate(binding: string, response: unknown): Promise<AuthenticationOutcome>;
}

export function passkeyCeremonies(knex: Knex, issuer: string, log: Logger): PasskeyCeremonies {
  const { hostname: rpID, origin } = new URL(issuer);

  /** A fresh challenge for the browser, stored as the base64url its clientDataJSON will carry. */
  async function issue(
    purpose: ChallengePurpose,
    binding: string,
    customerId?: string,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const challenge = new Uint8Array(randomBytes(32));
    await storeChallenge(knex, {
      challenge: Buffer.from(challenge).toString('base64url'),
      purpose,
      binding,
      customerId,
      expiresAt: new Date(Date.now() + CHALLENGE_TTL_SECONDS * 1000),
    });
    return challenge;
  }

  return {
    async registrationOptions(owner, binding) {
      const existing = await passkeysOfCustomer(knex, owner.id);
      return generateRegistrationOptions({
        rpName: RP_NAME,
        rpID,
        userName: owner.username,
        userDisplayName: owner.name ?? owner.username,
        // The customer's id, not their name: the authenticator keeps one passkey per customer here.
        userID: new TextEncoder().encode(owner.id),
        challenge: await issue('registration', binding, owner.id),
        timeout: CEREMONY_TIMEOUT_MS,
        attestationType: 'none',
        excludeCredentials: existing.map((passkey) => ({
          id: passkey.credentialId,
          transports: passkey.transports,
        })),
        authenticatorSelection: {
          residentKey: 'required',
          requireResidentKey: true,
          userVerification: 'required',
        },
      });
    },

    async register(customerId, binding, name, response) {
      const parsed = parseRegistrationResponse(response);
      if (!parsed) return { ok: false, reason: 'malformed response' };
      try {
        const verification = await verifyRegistrationResponse({
          response: parsed,
          expectedChallenge: (challenge) =>
            consumeChallenge(knex, challenge, { purpose: 'registration', binding, customerId }),
          expectedOrigin: origin,
          expectedRPID: rpID,
          requireUserVerification: true,
        });
        if (!verification.verified) return { ok: false, reason: 'not verified' };
        const info = verification.registrationInfo;
        const passkey = await addPasskey(knex, {
          customerId,
          credentialId: info.credential.id,
          publicKey: info.credential.publicKey,
          counter: info.credential.counter,
          transports: info.credential.transports ?? parsed.response.transports ?? [],
          deviceType: info.credentialDeviceType,
          backedUp: info.credentialBackedUp,
          name,
        });
        if (!passkey) return { ok: false, reason: 'credential already registered' };
        return { ok: true, passkey };
      } catch (error) {
        log.info({ err: error }, 'passkey registration refused');
        return { ok: false, reason: 'verification failed' };
      }
    },

    async authenticationOptions(binding) {
      return generateAuthenticationOptions({
        rpID,
        challenge: await issue('authentication', binding),
        timeout: CEREMONY_TIMEOUT_MS,
        userVerification: 'required',
      });
    },

    async authenticate(binding, response) {
      const parsed = parseAuthenticationResponse(response);
      if (!parsed) return { ok: false, reason: 'malformed response' };
      const passkey = await findPasskeyByCredentialId(knex, parsed.id);
      if (!passkey) return { ok: false, reason: 'unknown credential' };
      // A discoverable credential names its customer; it must be the one the passkey was added by.
      const userHandle = parsed.response.userHandle;
      if (!userHandle || Buffer.from(userHandle, 'base64url').toString('utf8') !== passkey.customerId) {
        return { ok: false, reason: 'user handle mismatch', customerId: passkey.customerId };
      }
      try {
        const verification = await verifyAuthenticationResponse({
          response: parsed,
          expectedChallenge: (challenge) =>
            consumeChallenge(knex, challenge, { purpose: 'authentication', binding }),
          expectedOrigin: origin,
          expectedRPID: rpID,
          credential: {
            id: passkey.credentialId,
            publicKey: passkey.publicKey,
            counter: passkey.counter,
            transports: passkey.transports,
          },
          requireUserVerification: true,
        });
        if (!verification.verified)
          return { ok: false, reason: 'not verified', customerId: passkey.customerId };
        const info = verification.authenticationInfo;
        const recorded = await recordPasskeyUse(knex, passkey, {
          newCounter: info.newCounter,
          backedUp: info.credentialBackedUp,
        });
        if (!recorded)
          return { ok: false, reason: 'counter did not advance', customerId: passkey.customerId };
        return {
          ok: true,
          customerId: passkey.customerId,
          amr: amrFor(info.credentialDeviceType),
          passkey,
        };
      } catch (error) {
        log.info({ err: error }, 'passkey sign-in refused');
        return { ok: false, reason: 'verification failed', customerId: passkey.customerId };
      }
    },
  };
}

// The browser's answers arrive as untrusted JSON: only well-formed, bounded strings go further.
const MAX_FIELD_LENGTH = 16_384;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function base64url(value: unknown): value is string {
  return (
    typeof value === 'string' && value.length > 0 && value.length <= MAX_FIELD_LENGTH && BASE64URL.test(value)
  );
}

function credentialEnvelope(value: unknown): { id: string; response: Record<string, unknown> } | undefined {
  if (!isRecord(value) || !isRecord(value.response)) return undefined;
  if (!base64url(value.id) || value.rawId !== value.id || value.type !== 'public-key') return undefined;
  return { id: value.id, response: value.response };
}

function parseRegistrationResponse(value: unknown): RegistrationResponseJSON | undefined {
  const envelope = credentialEnvelope(value);
  if (!envelope) return undefined;
  const { clientDataJSON, attestationObject, transports } = envelope.response;
  if (!base64url(clientDataJSON) || !base64url(attestationObject)) return undefined;
  const knownTransports = Array.isArray(transports)
    ? transports.filter(
        (transport): transport is string => typeof transport === 'string' && transport.length <= 32,
      )
    : [];
  return {
    id: envelope.id,
    rawId: envelope.id,
    type: 'public-key',
    clientExtensionResults: {},
    response: {
      clientDataJSON,
      attestationObject,
      transports: knownTransports.filter(isTransport),
    },
  };
}

function parseAuthenticationResponse(value: unknown): AuthenticationResponseJSON | undefined {
  const envelope = credentialEnvelope(value);
  if (!envelope) return undefined;
  const { clientDataJSON, authenticatorData, signature, userHandle } = envelope.response;
  if (!base64url(clientDataJSON) || !base64url(authenticatorData) || !base64url(signature)) return undefined;
  if (userHandle !== undefined && userHandle !== null && !base64url(userHandle)) return undefined;
  return {
    id: envelope.id,
    rawId: envelope.id,
    type: 'public-key',
    clientExtensionResults: {},
    response: {
      clientDataJSON,
      authenticatorData,
      signature,
      ...(typeof userHandle === 'string' ? { userHandle } : {}),
    },
  };
}

const TRANSPORTS = ['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'] as const;
type Transport = (typeof TRANSPORTS)[number];

function isTransport(value: string): value is Transport {
  return (TRANSPORTS as readonly string[]).includes(value);
}
