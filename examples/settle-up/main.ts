import { runFromCommandLine } from '../common/server.ts';
import { SettleUpKeyError } from './app-key.ts';
import { loadSettleUpConfig, SettleUpConfigError } from './config.ts';
import { startSettleUp } from './start.ts';

/** `npm run settle-up`: the example app on its own, configured from the environment. */
runFromCommandLine({
  name: 'settle-up',
  start: (log) => startSettleUp(loadSettleUpConfig(), log),
  isConfigError: (error) => error instanceof SettleUpConfigError || error instanceof SettleUpKeyError,
});
