/**
 * Reading an example app's settings from the environment: ports, URLs and required values, each
 * refused with the app's own configuration error (so a launcher can tell it from a crash).
 */

export type Env = Record<string, string | undefined>;

type ConfigErrorClass = new (message: string) => Error;

export interface EnvReader {
  port(name: string, fallback: number): number;
  /** An http(s) URL without its trailing slash. */
  url(name: string, fallback: string): string;
  /** A value without which the app cannot work; `why` says where it comes from. */
  required(name: string, why: string): string;
}

export function envReader(env: Env, ConfigError: ConfigErrorClass): EnvReader {
  return {
    port(name, fallback) {
      const raw = env[name] || String(fallback);
      const port = Number(raw);
      if (!/^\d+$/.test(raw) || port > 65535) {
        throw new ConfigError(`${name} must be a port number (got ${JSON.stringify(raw)})`);
      }
      return port;
    },
    url(name, fallback) {
      const raw = env[name] || fallback;
      const url = URL.parse(raw);
      if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
        throw new ConfigError(`${name} must be an http(s) URL (got ${JSON.stringify(raw)})`);
      }
      return url.href.replace(/\/$/, '');
    },
    required(name, why) {
      const value = env[name];
      if (!value) throw new ConfigError(`${name} is required: ${why}`);
      return value;
    },
  };
}
