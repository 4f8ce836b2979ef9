import { isIP } from 'node:net';

/**
 * Where a service's metrics listener listens, as both services' configurations read it: a port
 * of its own (or off), on loopback unless the operator says otherwise, because the numbers tell
 * an outsider how busy the bank is and which sign-ins fail.
 */

export interface MetricsListener {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

type Env = Record<string, string | undefined>;

const OFF = ['off', 'false', 'none'];

/** METRICS_PORT and METRICS_HOST from `env`; undefined when METRICS_PORT is off. */
export function readMetricsListener(
  env: Env,
  defaultPort: number,
  fail: (message: string) => Error,
): MetricsListener | undefined {
  const rawPort = env.METRICS_PORT?.trim() ?? '';
  if (OFF.includes(rawPort.toLowerCase())) return undefined;
  const port = rawPort === '' ? defaultPort : Number(rawPort);
  if ((rawPort !== '' && !/^\d+$/.test(rawPort)) || port > 65535) {
    throw fail(`METRICS_PORT must be a port number or off (got ${JSON.stringify(env.METRICS_PORT)})`);
  }
  const host = (env.METRICS_HOST?.trim() || '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
  if (!isIP(host) && !/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) {
    throw fail(
      `METRICS_HOST must be a host name or IP address to listen on (got ${JSON.stringify(env.METRICS_HOST)})`,
    );
  }
  return { host, port };
}
