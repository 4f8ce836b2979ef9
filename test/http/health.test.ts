import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { createBankApiLogger } from '../../src/bank-api/start.ts';
import { createLogger } from '../../src/log.ts';
import { startTestBankApi } from '../support/bank-api.ts';
import { startTestPassbook, testDatabaseUrl, useTestPassbook } from '../support/passbook.ts';

/**
 * /livez says the process is up and checks nothing else; /readyz says it can serve: its database
 * answers, its migrations are applied, its signing keys are loaded. /healthz answers as /readyz.
 */

const passbook = useTestPassbook();

/**
 * A TCP relay in front of the test database, which a test can cut: then the database is
 * unreachable for whoever connects through it, as in an outage, while the test database itself
 * stays up for every other test file.
 */
async function startDatabaseRelay(): Promise<{ url: string; cut(): Promise<void> }> {
  const target = new URL(testDatabaseUrl());
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  const url = new URL(target.href);
  url.hostname = '127.0.0.1';
  url.port = String((relay.address() as AddressInfo).port);
  return {
    url: url.href,
    async cut() {
      const closed = new Promise((resolve) => relay.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function logCapture(): { stream: PassThrough; lines(): Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

test('/livez answers 200 and checks nothing', async () => {
  const answer = await fetch(`${passbook.url}/livez`);
  expect(answer.status).toBe(200);
  expect(answer.headers.get('cache-control')).toBe('no-store');
  expect(await answer.json()).toEqual({ status: 'ok' });
});

test('/readyz answers 200 with the database, the migrations and the keys checked; /healthz the same', async () => {
  for (const path of ['/readyz', '/healthz']) {
    const answer = await fetch(`${passbook.url}${path}`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(await answer.json()).toEqual({
      status: 'ok',
      checks: { database: 'ok', migrations: 'ok', keys: 'ok' },
    });
  }
});

test('with the database unreachable, /livez still answers 200 and /readyz 503, naming the database', async () => {
  const relay = await startDatabaseRelay();
  const log = logCapture();
  const cutOff = await startTestPassbook(
    { DATABASE_URL: relay.url },
    createLogger({ logLevel: 'info' }, log.stream),
  );
  try {
    expect((await fetch(`${cutOff.url}/readyz`)).status).toBe(200);
    await relay.cut();

    const live = await fetch(`${cutOff.url}/livez`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'ok' });

    for (const path of ['/readyz', '/healthz']) {
      const ready = await fetch(`${cutOff.url}${path}`);
      expect(ready.status).toBe(503);
      expect(ready.headers.get('cache-control')).toBe('no-store');
      expect(await ready.json()).toEqual({
        status: 'unavailable',
        checks: { database: 'failed', migrations: 'failed', keys: 'ok' },
      });
      // The reason goes to the log, under the request's id.
      const requestId = ready.headers.get('x-request-id');
      const failures = log.lines().filter((line) => line.msg === 'readiness check failed');
      expect(failures.filter((line) => line.requestId === requestId).map((line) => line.check)).toEqual(
        expect.arrayContaining(['database', 'migrations']),
      );
    }
  } finally {
    await cutOff.close();
  }
});

test('the bank API answers /livez and /readyz from the same kit', async () => {
  const bankApi = await startTestBankApi(passbook);
  try {
    const live = await fetch(`${bankApi.url}/livez`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'ok' });
    for (const path of ['/readyz', '/healthz']) {
      const ready = await fetch(`${bankApi.url}${path}`);
      expect(ready.status).toBe(200);
      expect(ready.headers.get('cache-control')).toBe('no-store');
      expect(await ready.json()).toEqual({ status: 'ok', checks: { database: 'ok', migrations: 'ok' } });
    }
  } finally {
    await bankApi.close();
  }
});

test("the bank API's /readyz answers 503 when its database is unreachable, /livez still 200", async () => {
  const relay = await startDatabaseRelay();
  const target = new URL(process.env.PASSBOOK_TEST_BANK_API_DATABASE_URL ?? '');
  const relayed = new URL(relay.url);
  target.hostname = relayed.hostname;
  target.port = relayed.port;
  const bankApi = await startTestBankApi(
    passbook,
    { BANK_API_DATABASE_URL: target.href },
    undefined,
    createBankApiLogger('silent'),
  );
  try {
    await relay.cut();
    expect((await fetch(`${bankApi.url}/livez`)).status).toBe(200);
    const ready = await fetch(`${bankApi.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({
      status: 'unavailable',
      checks: { database: 'failed', migrations: 'failed' },
    });
  } finally {
    await bankApi.close();
  }
});
