import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { MetricsListener } from './listener.ts';

/**
 * The metrics listener: GET /metrics and nothing else, on a port of its own, so that the numbers
 * never sit on the address customers and apps reach, and a proxy in front of the service cannot
 * expose them by accident.
 */

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

function answer(res: http.ServerResponse, status: number, headers: Record<string, string>, body: string) {
  res.writeHead(status, {
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

async function exposition(registry: Registry, req: http.IncomingMessage, res: http.ServerResponse) {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/metrics') {
    answer(res, 404, { 'Content-Type': 'text/plain; charset=utf-8' }, 'Not found\n');
    return;
  }
  if (req.method !== 'GET') {
    answer(res, 405, { 'Content-Type': 'text/plain; charset=utf-8', Allow: 'GET' }, 'Method not allowed\n');
    return;
  }
  let text: string;
  try {
    text = await registry.metrics();
  } catch {
    answer(res, 500, { 'Content-Type': 'text/plain; charset=utf-8' }, 'Metrics could not be collected\n');
    return;
  }
  answer(res, 200, { 'Content-Type': registry.contentType }, text);
}

export async function serveMetrics(registry: Registry, listener: MetricsListener): Promise<MetricsServer> {
  const server = http.createServer((req, res) => void exposition(registry, req, res));
  server.listen(listener.port, listener.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const host = listener.host.includes(':') ? `[${listener.host}]` : listener.host;
  return {
    url: `http://${host}:${port}/metrics`,
    async close() {
      server.closeIdleConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
