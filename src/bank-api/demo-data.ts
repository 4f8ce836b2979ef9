import { createHash } from 'node:crypto';
import type { Knex } from '../db/knex.ts';
import { ibanFor } from '../payments/iban.ts';
import { openAccounts, type NewAccount } from './ledger.ts';

/**
 * A believable few months of banking for a demo customer: a current account with salary, rent,
 * shopping and travel, a savings account and a bills account. The same customer and day always
 * give the same history (a seeded generator, no Math.random), so screenshots and tests are stable.
 */

const DAY_MS = 24 * 60 * 60 * 1000;
const HISTORY_DAYS = 92;
const CURRENCY = 'EUR';

type Random = () => number;

/** mulberry32: a tiny, well-mixed 32-bit generator; plenty for made-up shopping. */
function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** A Dutch-style IBAN at the demo bank ("PSBK"), different for every customer and account. */
function demoIban(customerId: string, index: number): string {
  const number = digest(`${customerId}:${index}`).readBigUInt64BE() % 10_000_000_000n;
  return ibanFor('NL', `PSBK${number.toString().padStart(10, '0')}`);
}

function between(random: Random, lowMinor: number, highMinor: number): number {
  return lowMinor + Math.floor(random() * (highMinor - lowMinor + 1));
}

function pick<T>(random: Random, choices: readonly T[]): T {
  return choices[Math.floor(random() * choices.length)] as T;
}

function at(day: Date, hour: number, minute: number): Date {
  return new Date(day.getTime() + (hour * 60 + minute) * 60 * 1000);
}

type Entry = NewAccount['transactions'][number];

const RESTAURANTS = ["Luigi's Trattoria", 'Noodle Bar Oost', 'The Crown', 'Bistro Lumière', 'Taco Loco'];
const SHOPS = ['Bookshop on the Corner', 'Northside Hardware', 'Marketplace Online', 'Urban Outfitters'];

/** What happens on the current account on one day. */
function everydaySpending(random: Random, day: Date): Entry[] {
  const entries: Entry[] = [];
  const weekday = day.getUTCDay() >= 1 && day.getUTCDay() <= 5;
  if (random() < 0.35) {
    entries.push({
      bookedAt: at(day, 17, between(random, 0, 59)),
      description: pick(random, ['FreshMart', 'FreshMart Express', 'Green Basket Grocers']),
      category: 'groceries',
      amountMinor: -between(random, 1_450, 9_800),
    });
  }
  if (weekday && random() < 0.45) {
    entries.push({
      bookedAt: at(day, 8, between(random, 5, 55)),
      description: 'Bean There Café',
      category: 'eating_out',
      amountMinor: -between(random, 280, 520),
    });
  }
  if (weekday && random() < 0.7) {
    entries.push({
      bookedAt: at(day, 7, between(random, 30, 59)),
      description: 'City Transit',
      category: 'transport',
      amountMinor: -pick(random, [290, 340, 410]),
    });
  }
  if (!weekday && random() < 0.55) {
    entries.push({
      bookedAt: at(day, 19, between(random, 0, 59)),
      description: pick(random, RESTAURANTS),
      category: 'eating_out',
      amountMinor: -between(random, 2_400, 7_800),
    });
  }
  if (random() < 0.07) {
    entries.push({
      bookedAt: at(day, 13, between(random, 0, 59)),
      description: pick(random, SHOPS),
      category: 'shopping',
      amountMinor: -between(random, 1_200, 8_900),
    });
  }
  return entries;
}

interface DemoHistory {
  everyday: Entry[];
  savings: Entry[];
  bills: Entry[];
}

/** Salary, rent, standing orders and bills: the same dates every month. */
function monthlyMoney(random: Random, day: Date, history: DemoHistory, savingsBalanceMinor: number): void {
  const date = day.getUTCDate();
  const lastOfMonth = new Date(day.getTime() + DAY_MS).getUTCDate() === 1;
  if (date === 1) {
    history.everyday.push({
      bookedAt: at(day, 6, 10),
      description: 'Harbour Lettings · Rent',
      category: 'housing',
      amountMinor: -115_000,
    });
  }
  if (date === 2) {
    history.everyday.push({
      bookedAt: at(day, 6, 20),
      description: 'To Rainy Day Savings',
      category: 'transfers',
      amountMinor: -40_000,
    });
    history.savings.push({
      bookedAt: at(day, 6, 20),
      description: 'From Everyday Account',
      category: 'transfers',
      amountMinor: 40_000,
    });
    history.everyday.push({
      bookedAt: at(day, 6, 25),
      description: 'To Bills Account',
      category: 'transfers',
      amountMinor: -26_000,
    });
    history.bills.push({
      bookedAt: at(day, 6, 25),
      description: 'From Everyday Account',
      category: 'transfers',
      amountMinor: 26_000,
    });
  }
  const bills: [number, string, string, number, number][] = [
    [5, 'Bright Energy', 'utilities', 8_940, 11_270],
    [8, 'Telco Mobile', 'utilities', 2_499, 2_499],
    [12, 'AquaCity Water', 'utilities', 3_120, 3_120],
    [15, 'Streamly', 'subscriptions', 1_299, 1_299],
    [20, 'Sentinel Home Insurance', 'insurance', 1_850, 1_850],
  ];
  for (const [billDate, description, category, low, high] of bills) {
    if (date === billDate) {
      history.bills.push({
        bookedAt: at(day, 9, 0),
        description,
        category,
        amountMinor: -between(random, low, high),
      });
    }
  }
  if (date === 10) {
    history.everyday.push({
      bookedAt: at(day, 9, 30),
      description: 'FitHub Gym',
      category: 'subscriptions',
      amountMinor: -3_900,
    });
  }
  if (date === 25) {
    history.everyday.push({
      bookedAt: at(day, 6, 0),
      description: 'Northwind Ltd · Salary',
      category: 'income',
      amountMinor: 318_000,
    });
  }
  if (lastOfMonth) {
    history.savings.push({
      bookedAt: at(day, 23, 0),
      description: 'Interest',
      category: 'income',
      amountMinor: Math.round((savingsBalanceMinor * 0.025) / 12),
    });
  }
}

/** The demo accounts and their history up to `asOf`, for one customer. */
export function demoAccounts(customerId: string, asOf: Date): NewAccount[] {
  const random = seededRandom(digest(customerId).readUInt32BE());
  const today = new Date(Date.UTC(asOf.getUTCFullYear(), asOf.getUTCMonth(), asOf.getUTCDate()));
  const history: DemoHistory = { everyday: [], savings: [], bills: [] };
  const savingsOpening = 820_000;
  for (let offset = HISTORY_DAYS; offset >= 1; offset -= 1) {
    const day = new Date(today.getTime() - offset * DAY_MS);
    const savingsSoFar = history.savings.reduce((sum, entry) => sum + entry.amountMinor, savingsOpening);
    monthlyMoney(random, day, history, savingsSoFar);
    history.everyday.push(...everydaySpending(random, day));
  }
  return [
    {
      name: 'Everyday Account',
      kind: 'current',
      iban: demoIban(customerId, 0),
      currency: CURRENCY,
      openingBalanceMinor: 214_035,
      transactions: history.everyday,
    },
    {
      name: 'Rainy Day Savings',
      kind: 'savings',
      iban: demoIban(customerId, 1),
      currency: CURRENCY,
      openingBalanceMinor: savingsOpening,
      transactions: history.savings,
    },
    {
      name: 'Bills Account',
      kind: 'current',
      iban: demoIban(customerId, 2),
      currency: CURRENCY,
      openingBalanceMinor: 31_000,
      transactions: history.bills,
    },
  ];
}

/** Gives a customer the demo accounts once; later calls open nothing. Returns how many were opened. */
export function seedDemoAccounts(knex: Knex, customerId: string, asOf = new Date()): Promise<number> {
  return openAccounts(knex, customerId, demoAccounts(customerId, asOf));
}
