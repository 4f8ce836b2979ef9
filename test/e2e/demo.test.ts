import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startDemo, type RunningDemo } from '../../scripts/demo-stack.ts';
import { createKnex } from '../../src/db/knex.ts';
import { CustomerAgent } from '../support/customer-agent.ts';
import { runRoleName } from '../support/database.ts';
import { createScratchDatabase, type ScratchDatabase } from '../support/scratch-database.ts';
import { freePort } from '../../scripts/ports.ts';

/** `npm run demo`, minus the terminal: three services wired by URLs and stored credentials. */

let database: ScratchDatabase;
let dataDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  database = await createScratchDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'passbook-demo-'));
  env = {
    NODE_ENV: 'development',
    DATABASE_URL: database.url,
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    BANK_API_PORT: String(await freePort()),
    BUDGET_BUDDY_PORT: String(await freePort()),
    SETTLE_UP_PORT: String(await freePort()),
    METRICS_PORT: '0',
    BANK_API_METRICS_PORT: '0',
    PURGE_INTERVAL: '0',
    LOG_LEVEL: 'silent',
  };
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
  await database.drop();
});

type Credentials = Record<string, { client_id: string; client_secret: string }>;

async function savedCredentials(): Promise<Credentials> {
  return JSON.parse(await readFile(path.join(dataDir, 'demo-clients.json'), 'utf8')) as Credentials;
}

/** The demo customer connects Budget Buddy and lands on a dashboard full of transactions. */
async function connectBudgetBuddy(demo: RunningDemo): Promise<string> {
  const agent = new CustomerAgent();
  const welcome = await agent.open(demo.budgetBuddyUrl);
  const signIn = await agent.submit(welcome, '/connect');
  const consent = await agent.signIn(signIn, demo.signIn.username, demo.signIn.password);
  const dashboard = await agent.consent(consent, 'allow');
  expect(dashboard.url).toBe(`${demo.budgetBuddyUrl}/`);
  return dashboard.body;
}

/** Text as the app's templates write it into a page. */
function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

async function knexFor<T>(work: (knex: ReturnType<typeof createKnex>) => Promise<T>): Promise<T> {
  const knex = createKnex(database.url, 1);
  try {
    return await work(knex);
  } finally {
    await knex.destroy();
  }
}

async function withDemo(work: (demo: RunningDemo) => Promise<void>): Promise<void> {
  const demo = await startDemo(env);
  try {
    await work(demo);
  } finally {
    await demo.close();
  }
}

test('the first start registers the app and the bank API, keeps their secrets, and the story works', async () => {
  await withDemo(async (demo) => {
    expect(demo.passbookUrl).toBe(`http://localhost:${env.PORT}`);
    expect(demo.signIn).toEqual({ username: 'demo', password: 'passbook-demo' });
    expect(demo.twoStep).toMatchObject({ username: 'demo-2fa', password: 'passbook-demo-2fa' });
    expect((await stat(demo.twoStep.file)).mode & 0o777).toBe(0o600);
    const credentials = await savedCredentials();
    expect(Object.keys(credentials).sort()).toEqual(['bank-api', 'budget-buddy']);
    expect((await stat(demo.credentialsFile)).mode & 0o777).toBe(0o600);

    expect((await fetch(`${demo.passbookUrl}/.well-known/openid-configuration`)).status).toBe(200);
    expect((await fetch(`${demo.bankApiUrl}/accounts`)).status).toBe(401);
    // Settle Up made its key pair and is registered with its public half, as a FAPI 2.0 app.
    const settleUpKey = path.join(dataDir, 'settle-up-key.json');
    expect((await stat(settleUpKey)).mode & 0o777).toBe(0o600);
    expect(await (await fetch(demo.settleUpUrl)).text()).toContain('Pay Jo back €25.00');
    const settleUp = await knexFor((knex) =>
      knex('clients')
        .where({ client_id: 'settle-up' })
        .first<{ metadata: Record<string, unknown> } | undefined>('metadata'),
    );
    expect(settleUp?.metadata).toMatchObject({
      app_profile: 'fapi2',
      token_endpoint_auth_method: 'private_key_jwt',
      redirect_uris: [`${demo.settleUpUrl}/callback`],
    });
    const dashboard = await connectBudgetBuddy(demo);
    expect(dashboard).toContain('Hi, Dana');
    expect(dashboard).toContain('Everyday Account');
    // The newest booking on Dana's accounts, whatever day of the month the test runs on (the
    // salary, say, is booked on the 25th and scrolls out of the recent thirty).
    const newest = await knexFor((knex) =>
      knex('bank.transactions as t')
        .join('bank.accounts as a', 'a.id', 't.account_id')
        .join('customers as c', 'c.id', 'a.customer_id')
        .where('c.username', demo.signIn.username)
        .orderBy([
          { column: 't.booked_at', order: 'desc' },
          { column: 't.id', order: 'desc' },
        ])
        .first<{ description: string } | undefined>('t.description'),
    );
    expect(newest).toBeDefined();
    expect(dashboard).toContain(escapeHtml(newest?.description ?? ''));
  });
});

test('a second start reuses the registrations and seeds no second set of accounts', async () => {
  const before = await savedCredentials();
  const settleUpBefore = await readFile(path.join(dataDir, 'settle-up-key.json'), 'utf8');
  await withDemo(async (demo) => {
    expect(await savedCredentials()).toEqual(before);
    expect(await readFile(path.join(dataDir, 'settle-up-key.json'), 'utf8')).toBe(settleUpBefore);
    await connectBudgetBuddy(demo);
  });
  const knex = createKnex(database.url, 1);
  try {
    const [row] = await knex('bank.accounts').count<{ count: string }[]>();
    // Three for each of the two demo customers, however many starts.
    expect(Number(row?.count)).toBe(6);
    // The demo's bank API ran as the role named after the database (the one the scratch database
    // was provisioned with, and that its drop removes), which owns the bank's tables.
    const owners = await knex('pg_tables').where({ schemaname: 'bank' }).distinct('tableowner');
    expect(owners).toEqual([{ tableowner: runRoleName(database.url, 'bank_api') }]);
  } finally {
    await knex.destroy();
  }
});

test('when the credentials file is gone, the demo registers its clients again and still works', async () => {
  const before = await savedCredentials();
  await rm(path.join(dataDir, 'demo-clients.json'));
  await withDemo(async (demo) => {
    const after = await savedCredentials();
    expect(after['budget-buddy']?.client_secret).not.toBe(before['budget-buddy']?.client_secret);
    expect(after['bank-api']?.client_secret).not.toBe(before['bank-api']?.client_secret);
    await connectBudgetBuddy(demo);
  });
});

test('a port already in use stops the demo, and what it had started is stopped again', async () => {
  const blocker = net.createServer();
  blocker.listen(Number(env.BUDGET_BUDDY_PORT));
  await once(blocker, 'listening');
  try {
    await expect(startDemo(env)).rejects.toMatchObject({ code: 'EADDRINUSE' });
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
  // Passbook and the bank API were closed again: their ports are free for the next start.
  await withDemo(async (demo) => {
    expect((await fetch(`${demo.bankApiUrl}/accounts`)).status).toBe(401);
  });
});
