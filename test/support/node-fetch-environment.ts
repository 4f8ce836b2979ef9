import { TestEnvironment } from 'jest-environment-node';

/**
 * jest's node environment plus the one global it leaves out that Passbook's outgoing requests
 * depend on: Node's global undici dispatcher. Node keeps it under a symbol, and jest copies only
 * string-keyed globals into a test's context; without it oidc-provider cannot build its SSRF
 * guard ("failed to setup SSRF protection") and sends back-channel logout tokens unguarded, which
 * production never does. A test file opts in with `@jest-environment` pointing here.
 */

// The names undici registers its global dispatcher under (Node 22 sets the first, 24 both).
const GLOBAL_DISPATCHER_KEYS = [
  Symbol.for('undici.globalDispatcher.1'),
  Symbol.for('undici.globalDispatcher.2'),
];

export default class NodeFetchEnvironment extends TestEnvironment {
  override async setup(): Promise<void> {
    await super.setup();
    // Node loads undici, and registers the dispatcher, on first use of fetch or its classes.
    void Response;
    const copied = GLOBAL_DISPATCHER_KEYS.filter((key) => {
      const dispatcher: unknown = Reflect.get(globalThis, key);
      if (dispatcher === undefined) return false;
      Reflect.set(this.global, key, dispatcher);
      return true;
    });
    if (copied.length === 0) throw new Error('Node registered no global undici dispatcher to copy');
  }
}
