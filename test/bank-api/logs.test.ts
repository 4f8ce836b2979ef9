import { PassThrough } from 'node:stream';
import { createBankApiLogger } from '../../src/bank-api/start.ts';
import { callBankApi, startTestBankApi } from '../support/bank-api.ts';
import { createTestCustomer, registerTestApp, startTestPassbook } from '../support/passbook.ts';
import { completeFlow } from '../support/third-party-app.ts';

test('the bank API logs each request without its token, query or client secret', async () => {
  const passbook = await startTestPassbook();
  const lines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => lines.push(chunk.toString()));
  const bankApi = await startTestBankApi(passbook, {}, undefined, createBankApiLogger('info', stream));
  try {
    const customer = await createTestCustomer(passbook.knex);
    const app = await registerTestApp(passbook);
    const { tokens } = await completeFlow(passbook, app, customer, 'openid transactions:read');
    await callBankApi(bankApi.url, '/transactions', { token: tokens.access_token });
    await callBankApi(bankApi.url, `/transactions?access_token=${tokens.access_token}`);
    await callBankApi(bankApi.url, '/accounts', { token: tokens.access_token });

    const log = lines.join('');
    expect(log).toContain('"path":"/transactions"');
    expect(log).toContain('"status":403');
    expect(log).not.toContain(tokens.access_token);
    expect(log).not.toContain(String(bankApi.resourceServer.client_secret));
    expect(log).not.toContain('access_token=');
  } finally {
    await bankApi.close();
    await passbook.close();
  }
});
