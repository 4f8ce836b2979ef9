import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../../service/kit.ts';

/**
 * Owner of the one connection each process listens on for changes to live access tokens and
 * grants in `oidc_models`, announced by the table's triggers (migrations/20261203110000) when a
 * change commits, on any node, from any code path (the provider, the account pages, the CLI).
 *
 * What listens here may trust what it has not been told only while the feed is live: connected,
 * listening, and its own heartbeat (a notification it sends itself every second) back within
 * three seconds. Anything else (a dropped connection, a server too slow to deliver, an event loop
 * too busy to read) is an outage: listeners are told to forget what they learnt, and the feed
 * stays not live until it has reconnected and heard its heartbeat again.
 */

const CHANGE_CHANNEL = 'oidc_model_changes';
/** How often the feed sends its heartbeat through PostgreSQL to itself. */
const HEARTBEAT_INTERVAL_MS = 1_000;
/** A heartbeat older than this means notifications may be late or lost: the feed is not live. */
const HEARTBEAT_LATE_MS = 3_000;
/** Silent this long, the connection is given up (it may be half-open) and a new one made. */
const RECONNECT_AFTER_SILENCE_MS = 10_000;
const RECONNECT_DELAY_MS = 1_000;

/** One row changed (`kind` and `id` as stored), or the whole table was emptied. */
export type ModelChange = { kind: string; id: string } | { kind: '*' };

export interface ModelChangeFeed {
  /** True while every committed change is known to reach this process within moments. */
  isLive(): boolean;
  onChange(listener: (change: ModelChange) => void): void;
  /** Called each time the feed stops being live: everything learnt while it was must go. */
  onOutage(listener: () => void): void;
  /** The PostgreSQL backend listening now (pg_stat_activity.pid), if connected. */
  backendPid(): number | undefined;
  close(): Promise<void>;
}

function parseChange(payload: string): ModelChange | undefined {
  if (payload === '*') return { kind: '*' };
  const colon = payload.indexOf(':');
  if (colon <= 0) return undefined;
  return { kind: payload.slice(0, colon), id: payload.slice(colon + 1) };
}

interface FeedOptions {
  log: Logger;
  /** Clock, in milliseconds; tests move it. */
  now?: () => number;
}

/** Listens on `connectionString` until closed, reconnecting after any loss. */
export function startModelChangeFeed(
  connectionString: string,
  { log, now = Date.now }: FeedOptions,
): ModelChangeFeed {
  const heartbeat = `heartbeat:${randomBytes(9).toString('base64url')}`;
  const changeListeners: ((change: ModelChange) => void)[] = [];
  const outageListeners: (() => void)[] = [];
  let client: pg.Client | undefined;
  let listening = false;
  let lastHeartbeatAt = 0;
  let listeningSince = 0;
  let listenedBefore = false;
  let wasLive = false;
  let closed = false;
  let heartbeatInFlight = false;
  let reconnectTimer: NodeJS.Timeout | undefined;

  const onTime = () => listening && now() - lastHeartbeatAt <= HEARTBEAT_LATE_MS;

  /** Notices the moment the feed stops being live, and tells the listeners once. */
  const isLive = (): boolean => {
    const live = onTime();
    if (wasLive && !live) {
      wasLive = false;
      for (const listener of outageListeners) listener();
    }
    return live;
  };

  const drop = (connection: pg.Client, why: string) => {
    if (client !== connection) return;
    const wasListening = listening;
    client = undefined;
    listening = false;
    // A heartbeat of this connection proves nothing about the next one.
    lastHeartbeatAt = 0;
    isLive();
    connection.removeAllListeners();
    connection.on('error', () => {});
    // end() waits for a server that may never answer: the connection is let go without waiting.
    void connection.end().catch(() => {});
    if (!closed) {
      // Once when it is lost; each failed attempt to reconnect after that only at debug level.
      if (wasListening) log.warn({ why }, 'token cache: change feed lost, reconnecting');
      else log.debug({ why }, 'token cache: change feed still down');
      reconnectTimer = setTimeout(() => void connect(), RECONNECT_DELAY_MS);
    }
  };

  const received = (message: pg.Notification) => {
    if (message.channel !== CHANGE_CHANNEL || message.payload === undefined) return;
    if (message.payload === heartbeat) {
      lastHeartbeatAt = now();
      if (!wasLive && onTime()) wasLive = true;
      return;
    }
    const change = parseChange(message.payload);
    if (change) for (const listener of changeListeners) listener(change);
  };

  async function connect(): Promise<void> {
    reconnectTimer = undefined;
    if (closed) return;
    const connection = new pg.Client({
      connectionString,
      application_name: 'passbook change feed',
      keepAlive: true,
    });
    client = connection;
    connection.on('error', (error) => drop(connection, error.message));
    connection.on('end', () => drop(connection, 'connection ended'));
    connection.on('notification', received);
    try {
      await connection.connect();
      await connection.query(`LISTEN ${CHANGE_CHANNEL}`);
      if (client !== connection) return;
      listening = true;
      listeningSince = now();
      if (listenedBefore) log.info('token cache: change feed back');
      listenedBefore = true;
      sendHeartbeat();
    } catch (error) {
      drop(connection, (error as Error).message);
    }
  }

  function sendHeartbeat(): void {
    const connection = client;
    if (!connection || !listening || heartbeatInFlight) return;
    heartbeatInFlight = true;
    connection
      .query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, heartbeat])
      .catch((error: unknown) => drop(connection, (error as Error).message))
      .finally(() => {
        heartbeatInFlight = false;
      });
  }

  const ticker = setInterval(() => {
    isLive();
    const connection = client;
    const silentFor = now() - Math.max(lastHeartbeatAt, listeningSince);
    if (connection && listening && silentFor > RECONNECT_AFTER_SILENCE_MS) {
      drop(connection, 'no heartbeat');
      return;
    }
    sendHeartbeat();
  }, HEARTBEAT_INTERVAL_MS);
  ticker.unref();
  void connect();

  return {
    isLive,
    onChange: (listener) => changeListeners.push(listener),
    onOutage: (listener) => outageListeners.push(listener),
    backendPid: () => (listening ? (client as { processID?: number } | undefined)?.processID : undefined),
    async close() {
      closed = true;
      clearInterval(ticker);
      if (reconnectTimer) clearTimeout(reconnectTimer);
      const connection = client;
      client = undefined;
      listening = false;
      isLive();
      if (connection) {
        connection.removeAllListeners();
        connection.on('error', () => {});
        await Promise.race([
          connection.end().catch(() => {}),
          new Promise((resolve) => setTimeout(resolve, 1_000).unref()),
        ]);
      }
    },
  };
}
