import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.ts';
import { createTestCustomer, registerTestApp, startTestPassbook } from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

test('a whole flow at debug level logs no password, code, token or client secret', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const passbook = await startTestPassbook({}, createLogger({ logLevel: 'debug' }, sink));
  try {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const { callbackUrl, tokens } = await completeFlow(passbook, app, customer);
    const code = new URL(callbackUrl).searchParams.get('code');

    const logged = lines.join('');
    expect(logged).toContain('"path":"/token"');
    for (const secret of [
      customer.password,
      code,
      tokens.access_token,
      tokens.refresh_token,
      tokens.id_token,
      app.client_secret,
    ]) {
      expect(secret).toBeTruthy();
      expect(logged).not.toContain(secret);
    }
  } finally {
    await passbook.close();
  }
});
