import { timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ClientMetadata } from 'oidc-provider';
import type { Knex } from '../db/knex.ts';
import {
  clientMetadataFor,
  createClient,
  deleteClient,
  findClientMetadata,
  secretDigest,
  type NewClient,
} from '../clients/clients.ts';

/**
 * Development only: the demo's apps and their credentials. Passbook keeps only a digest of a
 * client secret, so the demo writes the secrets it is given to <DATA_DIR>/demo-clients.json
 * (git-ignored, readable by its owner only) for the demo's own apps to start with. A client
 * whose secret is not in that file, or whose registration has changed, is deleted and
 * registered again: it is a demo app, and nothing else can recover its secret.
 */

const DEMO_CLIENTS_FILE = 'demo-clients.json';

export interface DemoClientCredentials {
  client_id: string;
  client_secret: string;
}

type CredentialsFile = Record<string, DemoClientCredentials>;

export function demoClientsFile(dataDir: string): string {
  return path.resolve(dataDir, DEMO_CLIENTS_FILE);
}

function isCredentials(entry: unknown): entry is DemoClientCredentials {
  return (
    typeof entry === 'object' &&
    entry !== null &&
    'client_id' in entry &&
    typeof entry.client_id === 'string' &&
    'client_secret' in entry &&
    typeof entry.client_secret === 'string'
  );
}

async function readCredentials(file: string): Promise<CredentialsFile> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null) return {};
    // An entry edited out of shape is left out, and its client registered afresh like a missing one.
    return Object.fromEntries(Object.entries(parsed).filter(([, entry]) => isCredentials(entry)));
  } catch {
    // Missing or unreadable: every demo client will be registered afresh.
    return {};
  }
}

/** Written to a temporary file and renamed, so a crash never leaves half a file. */
async function writeCredentials(file: string, credentials: CredentialsFile): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, file);
}

function secretMatches(stored: ClientMetadata, secret: unknown): boolean {
  if (typeof secret !== 'string' || typeof stored.client_secret !== 'string') return false;
  const expected = Buffer.from(stored.client_secret);
  const presented = Buffer.from(secretDigest(secret));
  return expected.length === presented.length && timingSafeEqual(expected, presented);
}

function sameRegistration(stored: ClientMetadata, wanted: ClientMetadata): boolean {
  return Object.entries(wanted).every(
    ([key, value]) => JSON.stringify(stored[key]) === JSON.stringify(value),
  );
}

export interface EnsuredDemoClient {
  credentials: DemoClientCredentials;
  /** True when the client was (re-)registered now, with a new secret. */
  created: boolean;
}

/**
 * Makes sure a demo app that authenticates with its own key pair (private_key_jwt, no secret) is
 * registered as wanted: with the public keys it has now, which it made on its first start.
 */
export async function ensureDemoKeyedClient(
  knex: Knex,
  validate: (metadata: ClientMetadata) => Promise<void>,
  client: NewClient & { clientId: string },
): Promise<{ created: boolean }> {
  const stored = await findClientMetadata(knex, client.clientId);
  if (stored && sameRegistration(stored, clientMetadataFor(client, client.clientId)))
    return { created: false };
  if (stored) await deleteClient(knex, client.clientId);
  await createClient(knex, client, validate);
  return { created: true };
}

/** Makes sure a confidential demo client is registered as wanted, with its secret in the file. */
export async function ensureDemoClient(
  knex: Knex,
  validate: (metadata: ClientMetadata) => Promise<void>,
  dataDir: string,
  client: NewClient & { clientId: string },
): Promise<EnsuredDemoClient> {
  const file = demoClientsFile(dataDir);
  const saved = await readCredentials(file);
  const known = saved[client.clientId];
  const stored = await findClientMetadata(knex, client.clientId);
  const wanted = clientMetadataFor(client, client.clientId);
  if (stored && known && secretMatches(stored, known.client_secret) && sameRegistration(stored, wanted)) {
    return { credentials: known, created: false };
  }
  if (stored) await deleteClient(knex, client.clientId);
  const registered = await createClient(knex, client, validate);
  if (!registered.client_secret) throw new Error(`demo client ${client.clientId} must be confidential`);
  const credentials = { client_id: registered.client_id, client_secret: registered.client_secret };
  await writeCredentials(file, { ...(await readCredentials(file)), [client.clientId]: credentials });
  return { credentials, created: true };
}
