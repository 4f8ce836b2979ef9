import { jest } from '@jest/globals';

/**
 * Moves the clock that the server and its storage read (Date) without faking timers, sockets or
 * promises: the real PostgreSQL and HTTP keep working while "now" is somewhere else.
 */
export async function atTime<T>(time: number, work: () => Promise<T>): Promise<T> {
  jest.useFakeTimers({
    now: time,
    doNotFake: [
      'hrtime',
      'nextTick',
      'performance',
      'queueMicrotask',
      'requestAnimationFrame',
      'cancelAnimationFrame',
      'requestIdleCallback',
      'cancelIdleCallback',
      'setImmediate',
      'clearImmediate',
      'setInterval',
      'clearInterval',
      'setTimeout',
      'clearTimeout',
    ],
  });
  try {
    return await work();
  } finally {
    jest.useRealTimers();
  }
}
