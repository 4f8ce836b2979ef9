import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../support/project.ts';

/**
 * docker-compose.yml cannot be run here (no container engine), so what can be checked without one
 * is checked: two Passbook nodes behind a load balancer that routes only to ready nodes, the
 * settings every node must share, and every variable documented in .env.example.
 */

interface Service {
  image?: string;
  build?: string;
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  ports?: string[];
}

const read = (file: string) => readFile(path.join(PROJECT_ROOT, file), 'utf8');

async function services(): Promise<Record<string, Service>> {
  const compose = parse(await read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, Service>;
  };
  return compose.services;
}

const NODES = ['passbook-1', 'passbook-2'];

test('two Passbook nodes, PostgreSQL and a load balancer', async () => {
  expect(Object.keys(await services()).sort()).toEqual([
    'load-balancer',
    'passbook-1',
    'passbook-2',
    'postgres',
  ]);
});

test('each node is health-checked on /readyz and built from this project', async () => {
  const all = await services();
  for (const name of NODES) {
    const node = all[name];
    expect({ name, build: node?.build }).toEqual({ name, build: '.' });
    expect(node?.healthcheck?.test.join(' ')).toContain('/readyz');
  }
});

test('the nodes share what every node must share, and trust the load balancer', async () => {
  const all = await services();
  const [first, second] = NODES.map((name) => all[name]?.environment ?? {});
  for (const name of ['COOKIE_KEYS', 'DATA_ENCRYPTION_KEY', 'ISSUER', 'DATABASE_URL']) {
    expect({ name, value: second?.[name] }).toEqual({ name, value: first?.[name] });
    expect(first?.[name]).toBeTruthy();
  }
  expect(first?.TRUST_PROXY).toBe('true');
  expect(first?.NODE_ENV).toBe('production');
});

test('the load balancer round-robins over both nodes and routes only to ones whose /readyz answers 200', async () => {
  const config = await read('deploy/haproxy.cfg');
  expect(config).toMatch(/balance roundrobin/);
  expect(config).toMatch(/option httpchk GET \/readyz/);
  for (const node of NODES) expect(config).toMatch(new RegExp(`server ${node} ${node}:3000 check`));
  const balancer = (await services())['load-balancer'];
  expect(balancer?.ports).toEqual(['3000:3000']);
  expect(balancer?.image).toMatch(/^haproxy:/);
});

test('every variable the nodes set, and every one src/config.ts reads, is documented in .env.example', async () => {
  const documented = new Set(
    [...(await read('.env.example')).matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((match) => match[1]),
  );
  const node = (await services())['passbook-1'];
  const set = Object.keys(node?.environment ?? {});
  const config = await read('src/config.ts');
  const read_ = [...config.matchAll(/env(?:\.|\[')([A-Z][A-Z0-9_]+)|\(env, '([A-Z][A-Z0-9_]+)'/g)].map(
    (match) => match[1] ?? match[2],
  );
  expect(read_).toEqual(
    expect.arrayContaining(['NODE_ENV', 'DATABASE_URL', 'COOKIE_KEYS', 'SIGN_IN_MAX_FAILURES']),
  );
  const missing = [...new Set([...set, ...read_])].filter((name) => name && !documented.has(name));
  expect(missing).toEqual([]);
});
