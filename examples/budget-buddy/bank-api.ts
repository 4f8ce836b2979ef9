import type { BudgetBuddyConfig } from './config.ts';
import { ConnectionEndedError, type BankAuthorization } from './bank-connection.ts';
import type { Session } from './sessions.ts';

/**
 * Calls the bank's API with the customer's access token, in the Authorization header. An
 * access token lives minutes: one that is about to expire, or that the API refuses with 401,
 * is refreshed once and the call retried. If the refresh fails with invalid_grant, the customer
 * (or the bank) ended the connection, and Budget Buddy forgets its tokens.
 */

export interface Account {
  id: string;
  name: string;
  type: string;
  iban: string;
  currency: string;
  balance: string;
}

export interface Transaction {
  id: string;
  account_id: string;
  booked_at: string;
  description: string;
  category: string;
  amount: string;
  currency: string;
}

/** The bank did not answer usefully; the connection itself may be fine. */
export class BankUnavailableError extends Error {
  override name = 'BankUnavailableError';
}

const REFRESH_AHEAD_MS = 30_000;

export interface BankApi {
  accounts(session: Session): Promise<Account[]>;
  transactions(session: Session, limit: number): Promise<Transaction[]>;
}

export function bankApi(config: BudgetBuddyConfig, authorization: BankAuthorization): BankApi {
  /**
   * One refresh per session at a time: the bank rotates refresh tokens and treats a rotated-out
   * one as stolen (it revokes the grant), so two requests must never both refresh with the same one.
   */
  async function refreshed(session: Session): Promise<string> {
    const connection = session.connection;
    if (!connection) throw new ConnectionEndedError('not connected');
    session.refreshing ??= authorization
      .refresh(connection)
      .then((renewed) => {
        session.connection = renewed;
        return renewed;
      })
      .catch((error: unknown) => {
        if (!(error instanceof ConnectionEndedError)) {
          throw new BankUnavailableError(`refresh failed: ${(error as Error).message}`);
        }
        delete session.connection;
        throw error;
      })
      .finally(() => {
        delete session.refreshing;
      });
    return (await session.refreshing).accessToken;
  }

  async function currentToken(session: Session): Promise<string> {
    if (session.refreshing) return (await session.refreshing).accessToken;
    const connection = session.connection;
    if (!connection) throw new ConnectionEndedError('not connected');
    if (connection.expiresAt - REFRESH_AHEAD_MS > Date.now()) return connection.accessToken;
    return refreshed(session);
  }

  async function call(path: string, token: string): Promise<Response> {
    try {
      return await fetch(`${config.bankApiUrl}${path}`, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        signal: AbortSignal.timeout(5000),
      });
    } catch (error) {
      throw new BankUnavailableError(`the bank API could not be reached: ${(error as Error).message}`);
    }
  }

  async function get<T>(session: Session, path: string): Promise<T> {
    const token = await currentToken(session);
    let response = await call(path, token);
    if (response.status === 401) {
      // Someone else may have refreshed meanwhile; only refresh if the token we used is still current.
      const retryWith =
        session.connection?.accessToken === token ? await refreshed(session) : await currentToken(session);
      response = await call(path, retryWith);
      if (response.status === 401) {
        delete session.connection;
        throw new ConnectionEndedError('the bank refused a fresh token');
      }
    }
    if (!response.ok) throw new BankUnavailableError(`the bank API answered HTTP ${response.status}`);
    return (await response.json()) as T;
  }

  return {
    async accounts(session) {
      return (await get<{ accounts: Account[] }>(session, '/accounts')).accounts;
    },
    async transactions(session, limit) {
      return (await get<{ transactions: Transaction[] }>(session, `/transactions?limit=${limit}`))
        .transactions;
    },
  };
}
