import type { Account, Transaction } from './bank-api.ts';

/**
 * What Budget Buddy makes of the bank's data: where the money went this month, in plain numbers.
 * Amounts arrive as decimal strings and are added up in cents.
 */

const CATEGORY_LABELS: Record<string, string> = {
  groceries: 'Groceries',
  eating_out: 'Eating out',
  transport: 'Transport',
  housing: 'Housing',
  utilities: 'Bills & utilities',
  subscriptions: 'Subscriptions',
  insurance: 'Insurance',
  shopping: 'Shopping',
  payments: 'Payments',
  income: 'Income',
  transfers: 'Transfers',
};

/** Money moved between the customer's own accounts is neither spending nor income. */
const NOT_SPENDING = new Set(['transfers', 'income']);

export function categoryLabel(category: string): string {
  return CATEGORY_LABELS[category] ?? category.replace(/_/g, ' ');
}

function cents(amount: string): number {
  return Math.round(Number(amount) * 100);
}

export interface CategorySpending {
  category: string;
  label: string;
  spentMinor: number;
  /** Share of the largest category, 0–100, for the bar. */
  barPercent: number;
}

export interface Summary {
  totalBalanceMinor: number;
  currency: string;
  monthLabel: string;
  spentThisMonthMinor: number;
  receivedThisMonthMinor: number;
  categories: CategorySpending[];
}

export function summarise(accounts: Account[], transactions: Transaction[], now = new Date()): Summary {
  const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
  const thisMonth = transactions.filter((transaction) => Date.parse(transaction.booked_at) >= monthStart);
  const spentByCategory = new Map<string, number>();
  let received = 0;
  for (const transaction of thisMonth) {
    const amount = cents(transaction.amount);
    if (transaction.category === 'income') received += amount;
    if (amount >= 0 || NOT_SPENDING.has(transaction.category)) continue;
    spentByCategory.set(transaction.category, (spentByCategory.get(transaction.category) ?? 0) - amount);
  }
  const ranked = [...spentByCategory.entries()].sort((a, b) => b[1] - a[1]);
  const largest = ranked[0]?.[1] ?? 1;
  return {
    totalBalanceMinor: accounts.reduce((sum, account) => sum + cents(account.balance), 0),
    currency: accounts[0]?.currency ?? 'EUR',
    monthLabel: new Intl.DateTimeFormat('en-GB', { month: 'long', timeZone: 'UTC' }).format(now),
    spentThisMonthMinor: ranked.reduce((sum, [, spent]) => sum + spent, 0),
    receivedThisMonthMinor: received,
    categories: ranked.map(([category, spent]) => ({
      category,
      label: categoryLabel(category),
      spentMinor: spent,
      barPercent: Math.max(2, Math.round((spent / largest) * 100)),
    })),
  };
}

export function formatMoney(minor: number, currency: string): string {
  return new Intl.NumberFormat('en-GB', { style: 'currency', currency }).format(minor / 100);
}

export function formatDay(iso: string): string {
  return new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', timeZone: 'UTC' }).format(
    new Date(iso),
  );
}
