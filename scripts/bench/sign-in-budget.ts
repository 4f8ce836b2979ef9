import { hashPassword, verifyPassword } from '../../src/customers/passwords.ts';
import type { Row } from './report.ts';

/**
 * Where a sign-in flow's CPU goes, against what the sign-in target would allow: one argon2id
 * verification at Passbook's own parameters, timed on this machine, and the rest of the flow
 * from the sign-in row's CPU figures.
 */

/** Verifications timed; their mean is the figure. */
const HASHES = 20;

/** CPU time of one argon2id verification at Passbook's parameters, in ms of one core. */
export async function measureHashCpuMs(): Promise<number> {
  const hash = await hashPassword('a password of the benchmark');
  const before = process.cpuUsage();
  for (let i = 0; i < HASHES; i++) await verifyPassword(hash, 'a password of the benchmark');
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / HASHES;
}

/** A sign-in flow's CPU, in ms of one core per completed flow. */
export interface SignInBudget {
  targetFlowsPerSecond: number;
  cpus: number;
  flowsPerSecond: number;
  /** One argon2id verification (measured apart from the run, on the same machine). */
  hashMs: number;
  /** Passbook's process besides the hash: the flow's other requests. */
  passbookOtherMs: number;
  /** The whole machine besides Passbook and the load generator: PostgreSQL, mostly. */
  databaseAndRestMs: number;
  loadGeneratorMs: number;
  /** What the machine's cores give each flow at the target rate. */
  budgetAtTargetMs: number;
}

export function signInBudget(
  row: Row,
  hashMs: number,
  cpus: number,
  targetFlowsPerSecond: number,
): SignInBudget {
  const perFlow = (cores: number) => (row.perSecond > 0 ? (cores * 1000) / row.perSecond : 0);
  return {
    targetFlowsPerSecond,
    cpus,
    flowsPerSecond: row.perSecond,
    hashMs,
    passbookOtherMs: perFlow(row.serverCores) - hashMs,
    databaseAndRestMs: perFlow(row.machineCores - row.serverCores - row.loadCores),
    loadGeneratorMs: perFlow(row.loadCores),
    budgetAtTargetMs: (cpus * 1000) / targetFlowsPerSecond,
  };
}

const ms = (value: number) => `${value.toFixed(1)} ms`;

/** The budget in three sentences, for the console and the Markdown report alike. */
export function signInBudgetText(budget: SignInBudget): string {
  const rest = budget.passbookOtherMs + budget.databaseAndRestMs + budget.loadGeneratorMs;
  const room = budget.budgetAtTargetMs - budget.hashMs;
  const fits = (msPerFlow: number) => Math.floor((budget.cpus * 1000) / msPerFlow);
  return [
    `Sign-in's CPU per flow: one argon2id verification at Passbook's parameters costs ${ms(budget.hashMs)} of a core on this machine.`,
    `At ${budget.targetFlowsPerSecond} flows/s its ${budget.cpus} cores give a flow ${ms(budget.budgetAtTargetMs)}: after the hash, ${ms(room)} for the flow's other requests, PostgreSQL and the load generator,`,
    `which took ${ms(rest)} (Passbook ${ms(budget.passbookOtherMs)}, PostgreSQL and the rest ${ms(budget.databaseAndRestMs)}, the load generator ${ms(budget.loadGeneratorMs)}).`,
    `At these costs the cores fit ${fits(budget.hashMs + rest)} flows/s; with nothing but the hash, ${fits(budget.hashMs)}.`,
  ].join('\n');
}
