import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';

/*
 * Ports for the servers that the tests and the benchmark start. A port the kernel hands out for
 * listen(0) comes from the ephemeral range, the same range every outgoing connection takes its
 * local port from: between closing the probe and the server's own listen, a connection to
 * PostgreSQL could take it (EADDRINUSE). So the servers get ports below that range, where no
 * outgoing connection ever lands, each jest worker (or the benchmark) in a slice of its own so that
 * two workers never pick the same one, and no process picks one twice.
 */

const SLICE = 512;
const SLICES = 16;

/** The first port of the kernel's ephemeral range (Linux's default where it cannot be read). */
function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    return Number(low) || 32768;
  } catch {
    return 32768;
  }
}

function workerSlice(): { first: number; size: number } {
  const worker = Number(process.env.JEST_WORKER_ID ?? 0) % SLICES;
  const first = ephemeralLow() - SLICES * SLICE + worker * SLICE;
  return { first, size: SLICE };
}

const handedOut = new Set<number>();
let next = Math.floor(Math.random() * SLICE);

/** A port on 127.0.0.1 that nothing listens on now, and that no connection will take meanwhile. */
export async function freePort(): Promise<number> {
  const { first, size } = workerSlice();
  for (let tried = 0; tried < size; tried += 1) {
    const port = first + (next++ % size);
    if (handedOut.has(port)) continue;
    if (await isFree(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port left in ${first}–${first + size - 1}`);
}

/** Whether nothing listens on this port of 127.0.0.1 now. */
export async function isFree(port: number): Promise<boolean> {
  const probe = net.createServer();
  try {
    probe.listen(port, '127.0.0.1');
    await once(probe, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    await new Promise((resolve) => probe.close(resolve));
  }
}
