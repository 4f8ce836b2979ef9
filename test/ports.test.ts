import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { freePort, isFree } from '../scripts/ports.ts';

describe('the ports the tests start their servers on', () => {
  it('lie below the ephemeral range, where no outgoing connection takes one meanwhile', async () => {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const port = await freePort();
    expect(port).toBeLessThan(Number(low));
    expect(port).toBeGreaterThan(1024);
  });

  it('are never handed out twice, and one something listens on is not free', async () => {
    const ports = new Set<number>();
    const holders: net.Server[] = [];
    for (let i = 0; i < 20; i += 1) {
      const port = await freePort();
      expect(ports.has(port)).toBe(false);
      ports.add(port);
      const holder = net.createServer().listen(port, '127.0.0.1');
      await once(holder, 'listening');
      holders.push(holder);
      expect(await isFree(port)).toBe(false);
    }
    await Promise.all(holders.map((holder) => new Promise((resolve) => holder.close(resolve))));
  });
});
