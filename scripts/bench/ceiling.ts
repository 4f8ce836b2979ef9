import http from 'node:http';
import { findClientMetadata } from '../../src/clients/clients.ts';
import { loadConfig } from '../../src/config.ts';
import { createKnex } from '../../src/db/knex.ts';
import { requestListener } from '../../src/service/kit.ts';
import { benchProvider } from './provider.ts';
import { mintAccessToken, mintRefreshToken, inParallel, type MintTarget } from './mint.ts';

/**
 * The ceiling: oidc-provider as Passbook configures it (the same createProvider, the same keys,
 * clients, customers and policy) but keeping its models in its own in-memory development
 * adapter, served bare by node:http. Started by the benchmark as a child process; the parent
 * asks it over IPC to mint the tokens a workload needs, since only this process can hold them.
 */

export type CeilingRequest =
  | { type: 'mint-refresh-tokens'; target: MintTarget; count: number }
  | { type: 'mint-access-token'; target: MintTarget };

export type CeilingMessage =
  | { type: 'ready'; port: number }
  | { type: 'minted'; tokens: string[] }
  | { type: 'failed'; message: string };

/** The in-memory adapter's upsert: no expiry means kept until evicted. */
interface ClientStore {
  upsert(id: string, payload: object, expiresIn?: number): Promise<void>;
}

function send(message: CeilingMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const env = process.env as Record<string, string>;
  const config = loadConfig(env);
  if (!config.databaseUrl)
    throw new Error('the ceiling needs DATABASE_URL for its keys, clients and customers');
  const knex = createKnex(config.databaseUrl);
  const provider = await benchProvider(env, knex, 'oidc-provider-memory');

  // The in-memory adapter has no clients table: the bench's clients go into it as stored, digests and all.
  const clients = (provider.Client as unknown as { adapter: ClientStore }).adapter;
  for (const clientId of (process.env.BENCH_CLIENT_IDS ?? '').split(',').filter(Boolean)) {
    const metadata = await findClientMetadata(knex, clientId);
    if (!metadata) throw new Error(`client ${clientId} is not in the database`);
    await clients.upsert(clientId, metadata);
  }

  const mint = (request: CeilingRequest): Promise<string[]> =>
    request.type === 'mint-refresh-tokens'
      ? inParallel(request.count, 8, () => mintRefreshToken(provider, request.target))
      : mintAccessToken(provider, request.target).then((token) => [token]);
  process.on('message', (request: CeilingRequest) => {
    mint(request).then(
      (tokens) => send({ type: 'minted', tokens }),
      (error: unknown) => send({ type: 'failed', message: (error as Error).message }),
    );
  });
  process.on('disconnect', () => process.exit(0));

  const server = http.createServer(requestListener(provider));
  server.listen(config.port, '127.0.0.1', () => send({ type: 'ready', port: config.port }));
}

main().catch((error: unknown) => {
  process.stderr.write(`ceiling: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
