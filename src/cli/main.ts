import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { text } from 'node:stream/consumers';
import { readFile } from 'node:fs/promises';
import { ConfigError, loadConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { openDatabase } from '../db/open.ts';
import { migrate } from '../db/migrate.ts';
import { InvalidCustomerError, createCustomer } from '../customers/customers.ts';
import {
  CLIENT_PROFILES,
  InvalidClientError,
  createClient,
  deleteClient,
  listClients,
  profileOf,
  type ClientProfile,
  type NewClient,
} from '../clients/clients.ts';
import {
  APP_SIGNING_ALGORITHMS,
  InvalidAppKeysError,
  isAppSigningAlgorithm,
  parseAppKeys,
} from '../clients/app-keys.ts';
import {
  SIGNING_ALGORITHMS,
  SigningKeyError,
  activateSigningKey,
  listSigningKeys,
  loadCookieKeys,
  loadSigningKeys,
  retireSigningKey,
  rewrapSigningKeys,
  rotateSigningKey,
  type SigningAlgorithm,
} from '../oidc/keys.ts';
import { LONGEST_SIGNED_LIFETIME, createProvider, dpopNonceSecret } from '../oidc/provider.ts';
import { loadDataCipher } from '../crypto/data-keys.ts';
import { DataCipherError } from '../crypto/data-cipher.ts';
import { rewrapAuthenticatorSecrets } from '../customers/second-factors.ts';
import { purgeOnce } from '../oidc/storage/purge.ts';
import { clearKey, throttlePurgeTask, usernameKey } from '../sign-in/throttle.ts';
import type { Knex } from '../db/knex.ts';
import type { Config } from '../config.ts';

/**
 * Admin commands: `npm run cli -- <command> [options]`. Each prints one JSON document on stdout;
 * failures print one line on stderr and exit non-zero. Works whether or not the server runs.
 */

class UsageError extends Error {}

const USAGE = `usage: npm run cli -- <command> [options]

  migrate                                   apply pending database migrations
  customers:create --username U --password-stdin [--name N] [--email E]
                                            (users:create is the same command)
  customers:unlock --username U             end a sign-in pause after failed attempts now
                                            (users:unlock is the same command)
  clients:create --name N --redirect-uri U [--redirect-uri U2 ...]
                 [--post-logout-redirect-uri U ...] [--backchannel-logout-uri U]
                 [--public] [--scope "openid ..."]
                 [--jwks-file F | --jwks-uri U --signing-alg PS256|ES256|EdDSA]
                                            the app's public keys: private_key_jwt, no secret
                 [--profile fapi2]          a FAPI 2.0 app (payments): needs its keys; PAR,
                                            DPoP-bound tokens, codes of 60 s, no rotation
  clients:create --name N --resource-server   a bank API that introspects apps' tokens
  clients:list
  clients:delete CLIENT_ID
  tokens:purge                              delete expired tokens, sessions and grants now
  keys:list                                 every signing key: kid, alg, state and dates
  keys:rotate [--alg RS256|ES256] [--activate-after SECONDS | --manual]
                                            a new key, published now, signing after the delay
                                            (KEY_ACTIVATION_DELAY) or at keys:activate
  keys:activate KID [--force]               sign with KID now; the active key starts retiring
                                            (refused until every node has published it)
  keys:retire KID [--force]                 unpublish a retiring key once what it signed expired
  keys:rewrap                               re-encrypt stored secrets under the newest
                                            DATA_ENCRYPTION_KEY`;

type Command = (context: { knex: Knex; config: Config; args: string[] }) => Promise<unknown>;

/**
 * Identifiers Passbook makes may begin with a dash: a key ID is a base64url thumbprint (43
 * characters), a client_id 16 random base64url characters, and one in 64 of either starts with
 * "-". Such a word, where an option could stand and none of the command's options is named so,
 * is that identifier: it goes after "--", where it is a positional. ("--" itself works too.)
 */
const GENERATED_IDENTIFIER = /^-[A-Za-z0-9_-]{15}$|^-[A-Za-z0-9_-]{42}$/;

function withIdentifiersAsPositionals(args: string[], spec: ParseArgsOptionsConfig): string[] {
  const known = new Set(Object.keys(spec).map((name) => `--${name}`));
  const takesValue = new Set(
    Object.entries(spec)
      .filter(([, option]) => option.type === 'string')
      .map(([name]) => `--${name}`),
  );
  const kept: string[] = [];
  const identifiers: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] ?? '';
    if (arg === '--') {
      identifiers.push(...args.slice(i + 1));
      break;
    }
    if (GENERATED_IDENTIFIER.test(arg) && !known.has(arg)) {
      identifiers.push(arg);
      continue;
    }
    kept.push(arg);
    if (takesValue.has(arg) && i + 1 < args.length) kept.push(args[(i += 1)] ?? '');
  }
  return identifiers.length ? [...kept, '--', ...identifiers] : kept;
}

function options<T extends ParseArgsOptionsConfig>(args: string[], spec: T) {
  try {
    return parseArgs({
      args: withIdentifiersAsPositionals(args, spec),
      options: spec,
      allowPositionals: true,
      strict: true as const,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new UsageError(`${flag} is required`);
  return value;
}

async function readPassword(): Promise<string> {
  if (process.stdin.isTTY)
    throw new UsageError('--password-stdin reads the password from standard input; pipe it in');
  return (await text(process.stdin)).replace(/\r?\n$/, '');
}

const createCustomerCommand: Command = async ({ knex, args }) => {
  const { values } = options(args, {
    username: { type: 'string' },
    'password-stdin': { type: 'boolean' },
    name: { type: 'string' },
    email: { type: 'string' },
  });
  if (!values['password-stdin'])
    throw new UsageError('--password-stdin is required (passwords never go on the command line)');
  const customer = await createCustomer(knex, {
    username: required(values.username, '--username'),
    password: await readPassword(),
    name: values.name,
    email: values.email,
  });
  return { id: customer.id, username: customer.username, name: customer.name, email: customer.email };
};

const unlockCustomerCommand: Command = async ({ knex, args }) => {
  const { values } = options(args, { username: { type: 'string' } });
  const username = required(values.username, '--username');
  return { username, unlocked: await clearKey(knex, usernameKey(username)) };
};

function signingAlgorithm(value: string | undefined): SigningAlgorithm {
  const alg = value ?? SIGNING_ALGORITHMS[0];
  const known = SIGNING_ALGORITHMS.find((candidate) => candidate === alg);
  if (!known) throw new UsageError(`--alg must be one of ${SIGNING_ALGORITHMS.join(', ')}`);
  return known;
}

function seconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number of seconds`);
  return Number(value);
}

function clientProfile(value: string | undefined): ClientProfile {
  const profile = CLIENT_PROFILES.find((candidate) => candidate === (value ?? 'ordinary'));
  if (!profile) throw new UsageError(`--profile must be one of ${CLIENT_PROFILES.join(', ')}`);
  return profile;
}

interface KeyOptions {
  'jwks-file'?: string | undefined;
  'jwks-uri'?: string | undefined;
  'signing-alg'?: string | undefined;
}

/** The app's public keys, from a file (checked here) or a URL the engine fetches them from. */
async function appKeys(values: KeyOptions): Promise<Pick<NewClient, 'jwks' | 'jwksUri' | 'authSigningAlg'>> {
  const { 'jwks-file': file, 'jwks-uri': uri, 'signing-alg': alg } = values;
  if (file && uri) throw new UsageError('--jwks-file and --jwks-uri exclude each other');
  if (alg !== undefined && !isAppSigningAlgorithm(alg)) {
    throw new UsageError(`--signing-alg must be one of ${APP_SIGNING_ALGORITHMS.join(', ')}`);
  }
  if (uri) {
    if (!alg) throw new UsageError('--jwks-uri needs --signing-alg: the keys cannot be read now to tell it');
    return { jwksUri: uri, authSigningAlg: alg };
  }
  if (!file) {
    if (alg) throw new UsageError('--signing-alg goes with --jwks-file or --jwks-uri');
    return {};
  }
  const keys = await parseAppKeys(
    await readFile(file, 'utf8').catch(() => {
      throw new UsageError(`cannot read --jwks-file ${file}`);
    }),
  );
  if (alg && alg !== keys.alg) throw new UsageError(`the keys in ${file} sign with ${keys.alg}, not ${alg}`);
  return { jwks: { keys: keys.keys }, authSigningAlg: keys.alg };
}

const commands: Record<string, Command> = {
  async migrate({ knex }) {
    return { applied: await migrate(knex) };
  },

  'customers:create': createCustomerCommand,
  // The name operators' scripts may already use; the customer is called a customer everywhere else.
  'users:create': createCustomerCommand,
  'customers:unlock': unlockCustomerCommand,
  'users:unlock': unlockCustomerCommand,

  async 'clients:create'({ knex, config, args }) {
    const { values } = options(args, {
      name: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      'backchannel-logout-uri': { type: 'string' },
      public: { type: 'boolean' },
      scope: { type: 'string' },
      'resource-server': { type: 'boolean' },
      'jwks-file': { type: 'string' },
      'jwks-uri': { type: 'string' },
      'signing-alg': { type: 'string' },
      profile: { type: 'string' },
    });
    const isResourceServer = values['resource-server'] ?? false;
    const redirectUris = values['redirect-uri'] ?? [];
    const profile = clientProfile(values.profile);
    const keys = await appKeys(values);
    const hasKeys = keys.jwks !== undefined || keys.jwksUri !== undefined;
    if (
      isResourceServer &&
      (redirectUris.length > 0 || values.public || values.scope || hasKeys || values.profile)
    ) {
      throw new UsageError('--resource-server takes no --redirect-uri, --public, --scope, keys or --profile');
    }
    if (!isResourceServer && redirectUris.length === 0) throw new UsageError('--redirect-uri is required');
    if (values.public && hasKeys) throw new UsageError('a --public app has no keys to authenticate with');
    if (profile === 'fapi2' && !hasKeys) {
      throw new UsageError("--profile fapi2 needs the app's public keys: --jwks-file or --jwks-uri");
    }
    const [cookieKeys, cipher] = await Promise.all([
      loadCookieKeys(knex, config.cookieKeys),
      loadDataCipher(knex, config.dataEncryptionKeys),
    ]);
    const signingKeys = await loadSigningKeys(knex, cipher);
    // Used only to validate client metadata: it never signs anyone in.
    const provider = createProvider({
      config,
      knex,
      signingKeys,
      cookieKeys,
      hasSecondFactor: () => Promise.resolve(false),
      dpopNonceSecret: dpopNonceSecret(config, cipher),
    });
    const client = await createClient(
      knex,
      {
        name: required(values.name, '--name'),
        redirectUris,
        postLogoutRedirectUris: values['post-logout-redirect-uri'],
        backchannelLogoutUri: values['backchannel-logout-uri'],
        isPublic: values.public ?? false,
        scope: values.scope,
        isResourceServer,
        ...keys,
        ...(profile === 'fapi2' ? { profile } : {}),
      },
      (metadata) => provider.Client.validate(metadata),
    );
    return {
      client_id: client.client_id,
      ...(client.client_secret ? { client_secret: client.client_secret } : {}),
      client_name: client.metadata.client_name,
      redirect_uris: client.metadata.redirect_uris,
      token_endpoint_auth_method: client.metadata.token_endpoint_auth_method,
      grant_types: client.metadata.grant_types,
      post_logout_redirect_uris: client.metadata.post_logout_redirect_uris,
      backchannel_logout_uri: client.metadata.backchannel_logout_uri,
      scope: client.metadata.scope,
      profile: profileOf(client.metadata),
      ...(client.metadata.jwks_uri ? { jwks_uri: client.metadata.jwks_uri } : {}),
    };
  },

  async 'clients:list'({ knex }) {
    return { clients: await listClients(knex) };
  },

  async 'clients:delete'({ knex, args }) {
    const { positionals } = options(args, {});
    const clientId = required(positionals[0], 'CLIENT_ID');
    if (!(await deleteClient(knex, clientId))) throw new InvalidClientError(`no client "${clientId}"`);
    return { deleted: clientId };
  },

  async 'tokens:purge'({ knex, config }) {
    const purged = await purgeOnce(knex, [throttlePurgeTask(config.throttle)]);
    return purged === undefined ? { purged: 0, skipped: 'another process is purging' } : { purged };
  },

  async 'keys:list'({ knex, config }) {
    return { keys: await listSigningKeys(knex, await loadDataCipher(knex, config.dataEncryptionKeys)) };
  },

  async 'keys:rotate'({ knex, config, args }) {
    const { values } = options(args, {
      alg: { type: 'string' },
      'activate-after': { type: 'string' },
      manual: { type: 'boolean' },
    });
    const delay = seconds(values['activate-after'], '--activate-after');
    if (delay !== undefined && values.manual)
      throw new UsageError('--activate-after and --manual exclude each other');
    const cipher = await loadDataCipher(knex, config.dataEncryptionKeys);
    const key = await rotateSigningKey(
      knex,
      cipher,
      signingAlgorithm(values.alg),
      values.manual ? null : (delay ?? config.keyActivationDelaySeconds),
    );
    return { key, refresh_interval_seconds: config.keyRefreshIntervalSeconds };
  },

  async 'keys:activate'({ knex, config, args }) {
    const { values, positionals } = options(args, { force: { type: 'boolean' } });
    const cipher = await loadDataCipher(knex, config.dataEncryptionKeys);
    const key = await activateSigningKey(knex, cipher, required(positionals[0], 'KID'), {
      minPublishedSeconds: config.keyRefreshIntervalSeconds,
      force: values.force ?? false,
    });
    return { key };
  },

  async 'keys:retire'({ knex, args }) {
    const { values, positionals } = options(args, { force: { type: 'boolean' } });
    const key = await retireSigningKey(knex, required(positionals[0], 'KID'), {
      minAgeSeconds: LONGEST_SIGNED_LIFETIME,
      force: values.force ?? false,
    });
    return { key };
  },

  async 'keys:rewrap'({ knex, config }) {
    const cipher = await loadDataCipher(knex, config.dataEncryptionKeys);
    return {
      data_key_id: cipher.currentKeyId,
      signing_keys: await rewrapSigningKeys(knex, cipher),
      authenticator_apps: await rewrapAuthenticatorSecrets(knex, cipher),
    };
  },
};

const EXPECTED_ERRORS = [
  UsageError,
  ConfigError,
  InvalidCustomerError,
  InvalidClientError,
  InvalidAppKeysError,
  SigningKeyError,
  DataCipherError,
];

async function run(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    process.stderr.write(`${name ? `unknown command "${name}"\n` : ''}${USAGE}\n`);
    return 2;
  }
  // Quieter than the server unless LOG_LEVEL says otherwise; logs go to stderr so that stdout
  // stays one JSON document.
  const config = loadConfig(process.env, { logLevel: 'warn' });
  const log = createLogger(config, process.stderr);
  const database = await openDatabase(config, log);
  try {
    await migrate(database.knex);
    const result = await command({ knex: database.knex, config, args });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } finally {
    await database.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const expected = EXPECTED_ERRORS.some((type) => error instanceof type);
    process.stderr.write(
      `passbook: ${expected ? (error as Error).message : `failed: ${(error as Error).message}`}\n`,
    );
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
