import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RegisteredClient } from '../../src/clients/clients.ts';
import { createExampleLogger } from '../../examples/common/server.ts';
import { ensureSettleUpKey } from '../../examples/settle-up/app-key.ts';
import { loadSettleUpConfig } from '../../examples/settle-up/config.ts';
import { startSettleUp, type RunningSettleUp } from '../../examples/settle-up/start.ts';
import { registerTestApp, type TestPassbook } from './passbook.ts';
import { freePort } from '../../scripts/ports.ts';

/**
 * Settle Up as `npm run demo` runs it: its key pair made on first start in a folder of its own,
 * the public half registered at Passbook as a FAPI 2.0 app, on its own port on "localhost".
 */

export interface TestSettleUp extends RunningSettleUp {
  client: RegisteredClient;
}

export async function startTestSettleUp(passbook: TestPassbook, bankApiUrl: string): Promise<TestSettleUp> {
  const port = await freePort();
  const baseUrl = `http://localhost:${port}`;
  const keyDir = await mkdtemp(path.join(os.tmpdir(), 'passbook-settle-up-'));
  const keyFile = path.join(keyDir, 'settle-up-key.json');
  const key = await ensureSettleUpKey(keyFile);
  const client = await registerTestApp(passbook, {
    name: 'Settle Up',
    redirectUris: [`${baseUrl}/callback`],
    scope: 'openid',
    jwks: key.jwks,
    authSigningAlg: 'ES256',
    profile: 'fapi2',
  });
  const config = loadSettleUpConfig({
    PORT: String(port),
    BASE_URL: baseUrl,
    OIDC_ISSUER: passbook.issuer,
    BANK_API_URL: bankApiUrl,
    OIDC_CLIENT_ID: client.client_id,
    SETTLE_UP_KEY_FILE: keyFile,
  });
  const running = await startSettleUp(
    config,
    createExampleLogger('settle-up', process.env.LOG_LEVEL || 'silent'),
  );
  return {
    ...running,
    client,
    async close() {
      await running.close();
      await rm(keyDir, { recursive: true, force: true });
    },
  };
}
