import { runFromCommandLine } from '../common/server.ts';
import { ensureSettleUpKey, SettleUpKeyError } from './app-key.ts';
import { loadSettleUpConfig, settleUpKeyFile, SettleUpConfigError } from './config.ts';
import { startSettleUp } from './start.ts';

/**
 * `npm run settle-up`: the example app on its own, configured from the environment. Its key is
 * made first, so that a first run without OIDC_CLIENT_ID still leaves the public JWK set to register.
 */
runFromCommandLine({
  name: 'settle-up',
  start: async (log) => {
    const { jwksFile } = await ensureSettleUpKey(settleUpKeyFile());
    log.info({ jwksFile }, "Settle Up's public keys, for the bank to register");
    return startSettleUp(loadSettleUpConfig(), log);
  },
  isConfigError: (error) => error instanceof SettleUpConfigError || error instanceof SettleUpKeyError,
});
