import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { openSync, closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CeilingMessage, CeilingRequest } from './ceiling.ts';
import type { LoadMessage, LoadResult, StopMessage } from './load.ts';
import type { LoadSpec } from './workloads.ts';

/** The processes of a run: the servers under test, each on 127.0.0.1, and the load generator. */

const ROOT = path.resolve(import.meta.dirname, '../..');
const STOP_GRACE_MS = 10_000;
const START_TIMEOUT_MS = 60_000;

export interface ServerProcess {
  name: string;
  url: string;
  pid: number;
  logFile: string;
  /** Resident memory now, in bytes (VmRSS). */
  rss(): Promise<number>;
  /** Peak resident memory since the process started, in bytes (VmHWM). */
  peakRss(): Promise<number>;
  /** CPU time the process has used so far, in seconds (user + system). */
  cpuSeconds(): Promise<number>;
  alive(): boolean;
  stop(): Promise<void>;
}

/** What every service under test starts with: production mode, quiet logs, its port. */
export function productionEnv(port: number): Record<string, string> {
  return { PATH: process.env.PATH ?? '', NODE_ENV: 'production', LOG_LEVEL: 'warn', PORT: String(port) };
}

async function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  return kb ? Number(kb) * 1024 : 0;
}

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux). */
const TICKS = 100;

async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / TICKS;
}

/** The whole machine's CPU time so far, busy and in total, in seconds summed over cores. */
export async function machineCpuSeconds(): Promise<{ busy: number; total: number }> {
  const stat = await readFile('/proc/stat', 'utf8').catch(() => '');
  const times = (/^cpu\s+(.+)$/m.exec(stat)?.[1] ?? '').split(/\s+/).map(Number);
  const total = times.reduce((sum, value) => sum + value, 0);
  const idle = (times[3] ?? 0) + (times[4] ?? 0);
  return { busy: (total - idle) / TICKS, total: total / TICKS };
}

function asServer(name: string, url: string, child: ChildProcess, logFile: string): ServerProcess {
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name} did not start`);
  let exited = false;
  const exit = once(child, 'exit').then(() => {
    exited = true;
  });
  return {
    name,
    url,
    pid,
    logFile,
    rss: () => statusField(pid, 'VmRSS'),
    peakRss: () => statusField(pid, 'VmHWM'),
    cpuSeconds: () => processCpuSeconds(pid),
    alive: () => !exited,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exit;
      clearTimeout(timer);
    },
  };
}

async function waitHealthy(server: ServerProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!server.alive()) throw new Error(`${server.name} exited while starting; see ${server.logFile}`);
    const ok = await fetch(`${server.url}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await server.stop();
  throw new Error(`${server.name} did not answer /healthz within ${START_TIMEOUT_MS / 1000} s`);
}

function logTo(file: string): number {
  return openSync(file, 'a');
}

/** A service's own entry point, as production runs it, in a process of its own; up once /healthz answers. */
async function startService(
  name: string,
  entry: string,
  env: Record<string, string>,
  logFile: string,
  nodeFlags: string[],
): Promise<ServerProcess> {
  const fd = logTo(logFile);
  const child = spawn(process.execPath, [...nodeFlags, entry], {
    cwd: ROOT,
    env,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const server = asServer(name, `http://127.0.0.1:${env.PORT}`, child, logFile);
  await waitHealthy(server);
  return server;
}

/**
 * Fills the compile cache `npm start` names (scripts/compile-cache.ts), so that Passbook starts
 * as a node whose cache is already there does: every start but a clone's first, and every node
 * of the image.
 */
export async function fillCompileCache(env: Record<string, string>): Promise<void> {
  if (!env.NODE_COMPILE_CACHE) return;
  const child = spawn(process.execPath, ['scripts/compile-cache.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', NODE_COMPILE_CACHE: env.NODE_COMPILE_CACHE },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`filling the compile cache failed (exit ${code})`);
}

/** Passbook (src/main.ts); a second one on the same database is named apart ("Passbook B"). */
export function startPassbook(
  env: Record<string, string>,
  logFile: string,
  nodeFlags: string[] = [],
  name = 'Passbook',
): Promise<ServerProcess> {
  return startService(name, 'src/main.ts', env, logFile, nodeFlags);
}

/** The stand-alone bank API (src/bank-api/main.ts), configured by `env` as an operator would. */
export function startBankApi(env: Record<string, string>, logFile: string): Promise<ServerProcess> {
  return startService('bank API', 'src/bank-api/main.ts', env, logFile, []);
}

export interface CeilingProcess extends ServerProcess {
  mint(request: CeilingRequest): Promise<string[]>;
}

function nextMessage(child: ChildProcess): Promise<CeilingMessage> {
  return new Promise((resolve, reject) => {
    const onExit = () => reject(new Error('the ceiling exited'));
    child.once('exit', onExit);
    child.once('message', (message: CeilingMessage) => {
      child.off('exit', onExit);
      resolve(message);
    });
  });
}

/** The in-memory ceiling (ceiling.ts), with the same environment as Passbook. */
export async function startCeiling(env: Record<string, string>, logFile: string): Promise<CeilingProcess> {
  const fd = logTo(logFile);
  const child = fork(path.join(import.meta.dirname, 'ceiling.ts'), [], {
    cwd: ROOT,
    env,
    execPath: process.execPath,
    stdio: ['ignore', fd, fd, 'ipc'],
  });
  closeSync(fd);
  const server = asServer('in-memory ceiling', `http://127.0.0.1:${env.PORT}`, child, logFile);
  const ready = await Promise.race([
    nextMessage(child),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('the ceiling did not start')), START_TIMEOUT_MS),
    ),
  ]).catch(async (error: unknown) => {
    await server.stop();
    throw error;
  });
  if (ready.type !== 'ready') throw new Error(`the ceiling did not start: ${JSON.stringify(ready)}`);
  return {
    ...server,
    async mint(request) {
      const answer = nextMessage(child);
      child.send(request);
      const message = await answer;
      if (message.type !== 'minted')
        throw new Error(`the ceiling could not mint: ${JSON.stringify(message)}`);
      return message.tokens;
    },
  };
}

export interface RunningLoad {
  /** The figures, once the run is over (at its end, or soon after stop()). */
  result: Promise<LoadResult>;
  /** Ends the timed run early: a background load runs until it is no longer needed. */
  stop(): void;
}

/** Starts one workload in a fresh load-generator process. */
export function startLoad(spec: LoadSpec): RunningLoad {
  const child = fork(path.join(import.meta.dirname, 'load.ts'), [], {
    cwd: ROOT,
    execPath: process.execPath,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const limit = (spec.warmupSeconds + spec.durationSeconds) * 1000 + 60_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), limit);
  const answer = new Promise<LoadMessage>((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`the load generator exited (${code}) without figures`)));
  });
  child.send(spec);
  const result = answer
    .then((message) => {
      if (message.type === 'failed') throw new Error(`the load generator failed: ${message.message}`);
      return message.result;
    })
    .finally(() => {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGTERM');
    });
  // A background load may fail before anyone awaits it; the failure still reaches whoever does.
  result.catch(() => {});
  return {
    result,
    stop() {
      if (child.connected) child.send({ type: 'stop' } satisfies StopMessage);
    },
  };
}

/** Runs one workload in a fresh load-generator process and returns its figures. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return startLoad(spec).result;
}
