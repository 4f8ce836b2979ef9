import { jest } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { readdir, rm } from 'node:fs/promises';
import pg from 'pg';
import { testBankApiDatabaseUrl } from './support/bank-api.ts';
import {
  TEST_COOKIE_KEYS,
  TEST_DATA_ENCRYPTION_KEY,
  basicAuthorization,
  registerTestApp,
  startTestPassbook,
} from './support/passbook.ts';
import { loadsTypeScriptParser, newCompileCache } from './support/compile-cache.ts';
import { eventually } from './support/eventually.ts';
import { PROJECT_ROOT } from './support/project.ts';
import { createScratchDatabase, type ScratchDatabase } from './support/scratch-database.ts';
import { freePort } from '../scripts/ports.ts';

/**
 * SIGTERM to the real process (`node src/main.ts`, `node src/bank-api/main.ts`) with a request
 * in flight: the process stops accepting connections, answers /readyz with 503 on the connections
 * it still has, lets the request finish with its ordinary answer, and exits 0.
 */

jest.setTimeout(60_000);

interface Service {
  child: ChildProcessWithoutNullStreams;
  /** JSON log lines so far. */
  lines(): Record<string, unknown>[];
  /** Resolves with the first log line `match` accepts, waiting for it if need be. */
  logged(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function startService(script: string, env: Record<string, string>): Service {
  const child = spawn(process.execPath, [script], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiting = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const wake of waiting) wake();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = () =>
    stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    logged: (match) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(check);
          reject(new Error(`not logged in time; stdout: ${stdout}\nstderr: ${stderr}`));
        }, 20_000);
        const check = () => {
          const found = lines().find(match);
          if (found) {
            clearTimeout(timer);
            waiting.delete(check);
            resolve(found);
          }
        };
        waiting.add(check);
        check();
        void exited.then(() => setTimeout(check, 0));
      }),
  };
}

/**
 * One keep-alive connection, written to by hand so that a second request can be sent on it while
 * the first is still in flight (HTTP/1.1 pipelining): the server answers them in order.
 */
async function rawConnection(
  port: number,
): Promise<{ send(request: string): void; answers(count: number): Promise<string[]> }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  const split = () => received.split(/(?=HTTP\/1\.1 \d{3} )/).filter((answer) => answer !== '');
  return {
    send: (request) => socket.write(request),
    answers: (count) =>
      new Promise((resolve, reject) => {
        const done = () => {
          const answers = split();
          // An answer is complete once its body has arrived (these are all small JSON bodies).
          if (answers.length >= count && answers.every((answer) => /\r\n\r\n.*[}\]]\s*$/s.test(answer))) {
            socket.off('data', done);
            socket.off('close', closed);
            resolve(answers);
          }
        };
        const closed = () => {
          done();
          reject(new Error(`the connection closed after ${split().length} answer(s): ${received}`));
        };
        socket.on('data', done);
        socket.on('close', closed);
        done();
      }),
  };
}

function refusesConnection(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(true));
  });
}

/** "shutting down" is logged just before the listener closes: allow it a moment. */
async function refusesConnectionsSoon(port: number): Promise<boolean> {
  const deadline = Date.now() + 1000;
  while (!(await refusesConnection(port))) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

const READYZ = 'GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n';

describe('Passbook (node src/main.ts)', () => {
  let scratch: ScratchDatabase;
  let resourceServer: { client_id: string; client_secret?: string | undefined };

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    // A resource server registered as an operator would, so that introspection is a real success.
    const registrar = await startTestPassbook({ DATABASE_URL: scratch.url });
    try {
      resourceServer = await registerTestApp(registrar, {
        name: 'Bank API',
        redirectUris: [],
        isResourceServer: true,
      });
    } finally {
      await registrar.close();
    }
  });

  afterAll(async () => {
    await scratch.drop();
  });

  test('SIGTERM lets the request in flight finish, answers /readyz with 503 meanwhile, and exits 0', async () => {
    const port = await freePort();
    const passbook = startService('src/main.ts', {
      NODE_ENV: 'production',
      DATABASE_URL: scratch.url,
      PORT: String(port),
      ISSUER: `http://localhost:${port}`,
      COOKIE_KEYS: TEST_COOKIE_KEYS,
      DATA_ENCRYPTION_KEY: TEST_DATA_ENCRYPTION_KEY,
      SHUTDOWN_TIMEOUT: '20',
    });
    const locker = new pg.Client({ connectionString: scratch.url });
    try {
      await passbook.logged((line) => line.msg === 'Passbook is listening');
      await locker.connect();

      // The introspection's client lookup waits for this lock: the request stays in flight.
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE clients IN ACCESS EXCLUSIVE MODE');
      const connection = await rawConnection(port);
      const body = 'token=not-a-real-token';
      connection.send(
        'POST /token/introspection HTTP/1.1\r\nHost: localhost\r\n' +
          `Authorization: ${basicAuthorization(resourceServer)}\r\n` +
          `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      const deadline = Date.now() + 10_000;
      for (;;) {
        const { rows } = await locker.query<{ waiting: number }>(
          "SELECT count(*)::int AS waiting FROM pg_locks WHERE NOT granted AND relation = 'clients'::regclass",
        );
        if ((rows[0]?.waiting ?? 0) > 0) break;
        if (Date.now() > deadline) throw new Error('the introspection never waited for the lock');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }

      passbook.child.kill('SIGTERM');
      await passbook.logged((line) => line.msg === 'shutting down');
      expect(await refusesConnectionsSoon(port)).toBe(true);
      // Sent on the connection it still has, behind the request in flight.
      connection.send(READYZ);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(passbook.child.exitCode).toBeNull();

      await locker.query('COMMIT');
      const [introspection, readiness] = await connection.answers(2);
      expect(introspection).toMatch(/^HTTP\/1\.1 200 /);
      expect(introspection).toMatch(/\{"active":false\}$/);
      expect(readiness).toMatch(/^HTTP\/1\.1 503 /);
      expect(readiness).toMatch(/\{"status":"draining"\}$/);

      expect(await passbook.exited).toBe(0);
      const messages = passbook
        .lines()
        .map((line) => `${String(line.msg)} ${typeof line.path === 'string' ? line.path : ''}`.trim());
      // The readiness request is handled beside the one in flight (only its answer waits in line).
      const afterSignal = messages.slice(messages.indexOf('shutting down'));
      expect([...afterSignal].sort()).toEqual(
        ['request /readyz', 'request /token/introspection', 'shutting down', 'stopped'].sort(),
      );
      expect(afterSignal.at(-1)).toBe('stopped');
    } finally {
      await locker.end().catch(() => {});
      if (passbook.child.exitCode === null) passbook.child.kill('SIGKILL');
    }
  });

  test('a request still in flight after SHUTDOWN_TIMEOUT is cut off, and the process still exits 0', async () => {
    const port = await freePort();
    const passbook = startService('src/main.ts', {
      NODE_ENV: 'production',
      DATABASE_URL: scratch.url,
      PORT: String(port),
      ISSUER: `http://localhost:${port}`,
      COOKIE_KEYS: TEST_COOKIE_KEYS,
      DATA_ENCRYPTION_KEY: TEST_DATA_ENCRYPTION_KEY,
      SHUTDOWN_TIMEOUT: '1',
    });
    const locker = new pg.Client({ connectionString: scratch.url });
    try {
      await passbook.logged((line) => line.msg === 'Passbook is listening');
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE clients IN ACCESS EXCLUSIVE MODE');
      const connection = await rawConnection(port);
      const body = 'token=x';
      connection.send(
        'POST /token/introspection HTTP/1.1\r\nHost: localhost\r\n' +
          `Authorization: ${basicAuthorization(resourceServer)}\r\n` +
          `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      const signalled = Date.now();
      passbook.child.kill('SIGTERM');
      await expect(connection.answers(1)).rejects.toThrow(/closed after 0 answer/);
      expect(Date.now() - signalled).toBeGreaterThanOrEqual(900);
      // The lock is still held: the process must not wait for the abandoned query to end.
      expect(await passbook.exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(5000);
      expect(passbook.lines().map((line) => line.msg)).toEqual(
        expect.arrayContaining([
          'shutdown timeout: requests still in flight were cut off',
          'shutdown timeout: database work still under way was abandoned',
          'stopped',
        ]),
      );
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end().catch(() => {});
      if (passbook.child.exitCode === null) passbook.child.kill('SIGKILL');
    }
  });

  test('a second signal during the drain ends the process at once', async () => {
    const port = await freePort();
    const passbook = startService('src/main.ts', {
      NODE_ENV: 'production',
      DATABASE_URL: scratch.url,
      PORT: String(port),
      ISSUER: `http://localhost:${port}`,
      COOKIE_KEYS: TEST_COOKIE_KEYS,
      DATA_ENCRYPTION_KEY: TEST_DATA_ENCRYPTION_KEY,
    });
    const locker = new pg.Client({ connectionString: scratch.url });
    try {
      await passbook.logged((line) => line.msg === 'Passbook is listening');
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE clients IN ACCESS EXCLUSIVE MODE');
      const connection = await rawConnection(port);
      const body = 'token=x';
      connection.send(
        'POST /token/introspection HTTP/1.1\r\nHost: localhost\r\n' +
          `Authorization: ${basicAuthorization(resourceServer)}\r\n` +
          `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      passbook.child.kill('SIGTERM');
      await passbook.logged((line) => line.msg === 'shutting down');
      passbook.child.kill('SIGINT');
      expect(await passbook.exited).toBe(1);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end().catch(() => {});
      if (passbook.child.exitCode === null) passbook.child.kill('SIGKILL');
    }
  });

  test('once up, a node has written its compile cache: killed outright, the next start needs no TypeScript parser', async () => {
    const cache = await newCompileCache();
    const files = async () =>
      (await readdir(cache, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile())
        .length;
    const port = await freePort();
    const passbook = startService('src/main.ts', {
      NODE_ENV: 'production',
      DATABASE_URL: scratch.url,
      PORT: String(port),
      ISSUER: `http://localhost:${port}`,
      COOKIE_KEYS: TEST_COOKIE_KEYS,
      DATA_ENCRYPTION_KEY: TEST_DATA_ENCRYPTION_KEY,
      NODE_COMPILE_CACHE: cache,
    });
    try {
      await passbook.logged((line) => line.msg === 'Passbook is listening');
      // Written while the node runs (an exiting node would write it anyway), and done writing.
      let seen = -1;
      const settled = async () => {
        const now = await files();
        const done = now > 0 && now === seen;
        seen = now;
        return done;
      };
      expect(await eventually(settled, 10_000)).toBe(true);
      passbook.child.kill('SIGKILL');
      await passbook.exited;
      expect(await loadsTypeScriptParser(cache, [])).toBe(false);
    } finally {
      if (passbook.child.exitCode === null && passbook.child.signalCode === null)
        passbook.child.kill('SIGKILL');
      await rm(cache, { recursive: true, force: true });
    }
  });
});

describe('the bank API (node src/bank-api/main.ts)', () => {
  test('SIGTERM lets the request in flight finish with its answer, and exits 0', async () => {
    // Passbook's introspection endpoint, played here so that the test decides when it answers.
    let answerIntrospection: (() => void) | undefined;
    let asked: () => void = () => {};
    const introspectionAsked = new Promise<void>((resolve) => (asked = resolve));
    const fake = http.createServer((_request, response) => {
      answerIntrospection = () => {
        answerIntrospection = undefined;
        response.setHeader('content-type', 'application/json');
        response.end('{"active":false}');
      };
      asked();
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    const introspectionPort = (fake.address() as AddressInfo).port;

    const port = await freePort();
    const bankApi = startService('src/bank-api/main.ts', {
      NODE_ENV: 'production',
      PORT: String(port),
      ISSUER: 'http://localhost:1',
      INTROSPECTION_ENDPOINT: `http://127.0.0.1:${introspectionPort}/token/introspection`,
      INTROSPECTION_TIMEOUT_MS: '20000',
      CLIENT_ID: 'bank-api',
      CLIENT_SECRET: 'secret',
      BANK_API_DATABASE_URL: testBankApiDatabaseUrl(),
    });
    try {
      await bankApi.logged((line) => line.msg === 'bank API is listening');
      const connection = await rawConnection(port);
      connection.send(
        'GET /accounts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer some-token\r\n\r\n',
      );
      await introspectionAsked;

      bankApi.child.kill('SIGTERM');
      await bankApi.logged((line) => line.msg === 'shutting down');
      expect(await refusesConnectionsSoon(port)).toBe(true);
      connection.send(READYZ);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(bankApi.child.exitCode).toBeNull();

      answerIntrospection?.();
      const [accounts, readiness] = await connection.answers(2);
      expect(accounts).toMatch(/^HTTP\/1\.1 401 /);
      expect(accounts).toMatch(/"error":"invalid_token"/);
      expect(readiness).toMatch(/^HTTP\/1\.1 503 /);
      expect(readiness).toMatch(/\{"status":"draining"\}$/);
      expect(await bankApi.exited).toBe(0);
      expect(bankApi.lines().at(-1)).toMatchObject({ service: 'bank-api', msg: 'stopped' });
    } finally {
      answerIntrospection?.();
      fake.closeAllConnections();
      fake.close();
      if (bankApi.child.exitCode === null) bankApi.child.kill('SIGKILL');
    }
  });
});
