import { PassThrough, Writable } from 'node:stream';
import { createBankApiLogger } from '../../src/bank-api/start.ts';
import { createLogger } from '../../src/log.ts';
import { startTestBankApi } from '../support/bank-api.ts';
import { startTestPassbook, type TestPassbook } from '../support/passbook.ts';

/**
 * Every request has an id: a trusted proxy's X-Request-Id when it is plain and short, else a new
 * one. It comes back in the response and is on every log line written for the request.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Captured {
  stream: PassThrough;
  lines(): Record<string, unknown>[];
}

function logCapture(): Captured {
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

function requestLines(log: Captured, path: string): Record<string, unknown>[] {
  return log.lines().filter((line) => line.msg === 'request' && line.path === path);
}

describe('behind a trusted proxy (TRUST_PROXY=true)', () => {
  let passbook: TestPassbook;
  const log = logCapture();

  beforeAll(async () => {
    passbook = await startTestPassbook(
      { TRUST_PROXY: 'true' },
      createLogger({ logLevel: 'info' }, log.stream),
    );
  });
  afterAll(async () => {
    await passbook.close();
  });

  test("the proxy's X-Request-Id is echoed and is on the request's log line", async () => {
    const offered = 'lb-7f3a.42:edge/1=';
    const answer = await fetch(`${passbook.url}/livez`, { headers: { 'x-request-id': offered } });
    expect(answer.headers.get('x-request-id')).toBe(offered);
    expect(requestLines(log, '/livez').map((line) => line.requestId)).toContain(offered);
  });

  test('an id from the provider’s own routes is echoed too', async () => {
    const answer = await fetch(`${passbook.url}/.well-known/openid-configuration`, {
      headers: { 'x-request-id': 'discovery-1' },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-request-id')).toBe('discovery-1');
  });

  test.each([
    ['too long', 'a'.repeat(129)],
    ['with a space', 'two words'],
    ['with a quote', 'id"injected'],
    ['with a line break encoded', 'id%0d%0aSet-Cookie:x'],
    ['with non-ASCII', 'idé'],
  ])('an id %s is replaced by a generated one', async (_case, offered) => {
    const answer = await fetch(`${passbook.url}/livez`, { headers: { 'x-request-id': offered } });
    const echoed = answer.headers.get('x-request-id') ?? '';
    expect(echoed).toMatch(UUID);
    expect(JSON.stringify(log.lines())).not.toContain(offered);
  });

  test('an id of 128 safe characters is kept', async () => {
    const offered = 'A1b2-_.~:+/='.repeat(10).slice(0, 128);
    const answer = await fetch(`${passbook.url}/livez`, { headers: { 'x-request-id': offered } });
    expect(answer.headers.get('x-request-id')).toBe(offered);
  });
});

test('without a trusted proxy an incoming X-Request-Id is ignored and every request gets its own id', async () => {
  const log = logCapture();
  const passbook = await startTestPassbook({}, createLogger({ logLevel: 'info' }, log.stream));
  try {
    const first = await fetch(`${passbook.url}/livez`, { headers: { 'x-request-id': 'forged-id' } });
    const second = await fetch(`${passbook.url}/livez`);
    const ids = [first, second].map((answer) => answer.headers.get('x-request-id') ?? '');
    for (const id of ids) expect(id).toMatch(UUID);
    expect(ids[0]).not.toBe(ids[1]);
    expect(requestLines(log, '/livez').map((line) => line.requestId)).toEqual(ids);
    expect(JSON.stringify(log.lines())).not.toContain('forged-id');
  } finally {
    await passbook.close();
  }
});

test('the bank API gives its requests ids the same way, and its own log lines carry them', async () => {
  const passbook = await startTestPassbook();
  const log = logCapture();
  const bankApi = await startTestBankApi(
    passbook,
    { TRUST_PROXY: 'true' },
    undefined,
    createBankApiLogger('info', log.stream),
  );
  try {
    const answer = await fetch(`${bankApi.url}/accounts`, { headers: { 'x-request-id': 'bank-req-9' } });
    expect(answer.status).toBe(401);
    expect(answer.headers.get('x-request-id')).toBe('bank-req-9');
    expect(requestLines(log, '/accounts').map((line) => line.requestId)).toEqual(['bank-req-9']);
    expect(log.lines().every((line) => line.service === 'bank-api')).toBe(true);
  } finally {
    await bankApi.close();
    await passbook.close();
  }
});

describe('log format', () => {
  function terminal(): { stream: Writable & { isTTY: boolean }; text(): string } {
    const chunks: string[] = [];
    const stream = Object.assign(
      new Writable({
        write(chunk, _encoding, done) {
          chunks.push(String(chunk));
          done();
        },
      }),
      { isTTY: true },
    );
    return { stream, text: () => chunks.join('') };
  }

  test('development on a terminal prints lines for a person', () => {
    const out = terminal();
    const log = createLogger({ logLevel: 'info', env: 'development' }, out.stream);
    log.info({ path: '/token', status: 200 }, 'request');
    log.error({ err: new Error('boom') }, 'request failed');
    const [first, ...rest] = out.text().split('\n');
    expect(first).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}passbook request path=\/token status=200$/);
    expect(rest.join('\n')).toMatch(/ERROR passbook request failed\n {4}Error: boom\n\s+at /);
  });

  test('production stays JSON, even on a terminal; so does development into a pipe or file', () => {
    for (const [env, stream] of [
      ['production', terminal()],
      ['test', terminal()],
    ] as const) {
      createLogger({ logLevel: 'info', env }, stream.stream).info({ path: '/x' }, 'request');
      expect(JSON.parse(stream.text())).toMatchObject({ service: 'passbook', msg: 'request', path: '/x' });
    }
    const pipe = logCapture();
    createLogger({ logLevel: 'info', env: 'development' }, pipe.stream).info('hello');
    expect(pipe.lines()).toEqual([expect.objectContaining({ msg: 'hello' })]);
  });

  test('redaction still applies to readable lines', () => {
    const out = terminal();
    createLogger({ logLevel: 'info', env: 'development' }, out.stream).info(
      { client_secret: 'shh-secret' },
      'x',
    );
    expect(out.text()).not.toContain('shh-secret');
    expect(out.text()).toContain('client_secret=[redacted]');
  });
});
