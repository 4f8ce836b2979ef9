import { signInBudgetText, type SignInBudget } from './sign-in-budget.ts';

/**
 * The run's one table, its checks against the targets, and the JSON and Markdown written under
 * artifacts/bench/. The chart (chart.ts) is drawn from the same JSON.
 */

/**
 * Who served a row: one Passbook process; two on one database with the load split evenly
 * ("Passbook ×2"); the bank API, which introspects every request at one Passbook; the ceiling.
 */
export type ServerName = 'Passbook' | 'Passbook ×2' | 'bank API → Passbook' | 'in-memory ceiling';

/** One server process's own share of a row served by several. */
export interface ProcessFigures {
  name: string;
  peakRssBytes: number;
  cores: number;
}

export interface Row {
  /** The workload's id (workloads in plan.ts). */
  workload: string;
  label: string;
  server: ServerName;
  /** Rows in oidc_models when the run started; null where it does not apply (the ceiling). */
  storedRows: number | null;
  /** Rows the growth runs added before this one (0 for the ordinary runs); null for the ceiling. */
  filled: number | null;
  connections: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** For a flow: the p99 of its single requests (a request's p99 is p99Ms). */
  requestP99Ms: number;
  errors: number;
  errorSample?: string | undefined;
  /** The server process's peak; with several processes, the sum of each one's peak. */
  peakRssBytes: number;
  /** The server process's CPU during the timed run and warm-up, in cores (1 = one core busy); summed over several. */
  serverCores: number;
  /** Each process's own figures, in the order named, where the row has more than one. */
  processes?: ProcessFigures[] | undefined;
  /** The load generator's CPU during the same time, in cores. */
  loadCores: number;
  /** The whole machine's CPU during the same time, in cores: server, PostgreSQL and load generator. */
  machineCores: number;
  /** What one unit is: a request, or a whole sign-in flow of eight requests. */
  unit: 'request' | 'flow';
}

export interface Check {
  target: string;
  measured: string;
  met: boolean;
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memory: string;
  postgres: string;
  database: string;
  node: string;
  os: string;
}

/** How long a token revoked at one Passbook process stays active at another (revocation.ts). */
export interface RevocationDelay {
  /** Tokens revoked at A and then watched at B. */
  tokens: number;
  /** From A's answer to the revocation until B's first active:false answer arrived. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Tokens B called inactive at its first introspection after A's answer. */
  inactiveAtFirstLook: number;
  /** Tokens B still called active when the watch gave up (counted at that limit in the figures). */
  stillActive: number;
  /** How long one token is watched at most. */
  watchLimitMs: number;
  /** Unexpected answers from A or B. */
  errors: number;
  errorSample?: string | undefined;
  /** The other token's introspections B served meanwhile. */
  background: { connections: number; perSecond: number; p99Ms: number; errors: number };
}

export interface Report {
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  settings: Record<string, string | number>;
  rows: Row[];
  /** Absent when the run did not measure it (--only without revocation-delay). */
  revocation?: RevocationDelay | undefined;
  /** Absent when the run did not measure sign-in. */
  signInBudget?: SignInBudget | undefined;
  checks: Check[];
  failed: string[];
}

const MB = 1024 * 1024;

export function fractionOfCeiling(rows: Row[], row: Row): number | undefined {
  if (row.server !== 'Passbook' || row.filled !== 0) return undefined;
  const ceiling = rows.find(
    (other) => other.server === 'in-memory ceiling' && other.workload === row.workload,
  );
  return ceiling && ceiling.perSecond > 0 ? row.perSecond / ceiling.perSecond : undefined;
}

function formatRows(count: number | null): string {
  if (count === null) return '—';
  if (count >= 1_000_000) return `${(count / 1_000_000).toFixed(2)}M`;
  if (count >= 1_000) return `${(count / 1_000).toFixed(1)}k`;
  return String(count);
}

function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

function formatMb(bytes: number): string {
  return String(Math.round(bytes / MB));
}

/** A sum, and its parts when there are several: "612 MB (306 + 306)". */
function withParts(total: string, parts: string[] | undefined): string {
  return parts && parts.length > 1 ? `${total} (${parts.join(' + ')})` : total;
}

function cells(rows: Row[], row: Row): string[] {
  const fraction = fractionOfCeiling(rows, row);
  const rss = row.processes?.map((process) => formatMb(process.peakRssBytes));
  const cores = row.processes?.map((process) => process.cores.toFixed(2));
  return [
    row.label,
    row.server,
    formatRows(row.storedRows),
    `${Math.round(row.perSecond).toLocaleString('en-US')}${row.unit === 'flow' ? ' flows' : ''}`,
    fraction === undefined ? '' : `${Math.round(fraction * 100)}%`,
    formatMs(row.p50Ms),
    formatMs(row.p99Ms),
    row.errors === 0 ? '0' : `${row.errors} FAILED`,
    withParts(`${formatMb(row.peakRssBytes)} MB`, rss),
    `${withParts(row.serverCores.toFixed(2), cores)} / ${row.loadCores.toFixed(2)} / ${row.machineCores.toFixed(2)}`,
  ];
}

const HEADINGS = [
  'workload',
  'server',
  'stored rows',
  'per second',
  'of ceiling',
  'p50 ms',
  'p99 ms',
  'errors',
  'peak RSS',
  'CPU cores: server / load / machine',
];
const RIGHT_ALIGNED = new Set([2, 3, 4, 5, 6, 7, 8, 9]);

export function textTable(rows: Row[]): string {
  const table = [HEADINGS, ...rows.map((row) => cells(rows, row))];
  const widths = HEADINGS.map((_, column) => Math.max(...table.map((line) => (line[column] ?? '').length)));
  const render = (line: string[]) =>
    line
      .map((cell, column) =>
        RIGHT_ALIGNED.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
      )
      .join('  ');
  return [
    render(HEADINGS),
    widths.map((width) => '-'.repeat(width)).join('  '),
    ...table.slice(1).map(render),
  ].join('\n');
}

export function markdownTable(rows: Row[]): string {
  const align = HEADINGS.map((_, column) => (RIGHT_ALIGNED.has(column) ? '---:' : '---'));
  const line = (values: string[]) => `| ${values.join(' | ')} |`;
  return [line(HEADINGS), line(align), ...rows.map((row) => line(cells(rows, row)))].join('\n');
}

const count = (value: number) => value.toLocaleString('en-US');

/** What the rows of several processes mean, and what the second Passbook process bought. */
export function notesText(rows: Row[]): string[] {
  const notes: string[] = [];
  const twoNodes = rows.filter((row) => row.server === 'Passbook ×2');
  if (twoNodes.length) {
    notes.push(
      'Passbook ×2: two Passbook processes on one database, the connections split evenly over them; ' +
        'peak RSS and server CPU are their sums (A + B).',
    );
    const scaling = twoNodes.flatMap((row) => {
      const one = rows.find(
        (other) => other.server === 'Passbook' && other.workload === row.workload && other.filled === 0,
      );
      return one && one.perSecond > 0 ? [`${row.label} ×${(row.perSecond / one.perSecond).toFixed(2)}`] : [];
    });
    if (scaling.length) notes.push(`Two processes against one: ${scaling.join(', ')}.`);
  }
  if (rows.some((row) => row.server === 'bank API → Passbook')) {
    notes.push(
      'bank API → Passbook: per bank-API request, each with one introspection at Passbook; ' +
        'peak RSS and server CPU are bank API + Passbook.',
    );
  }
  return notes;
}

function revocationSetting(delay: RevocationDelay): string {
  const { background } = delay;
  return (
    `${count(delay.tokens)} access tokens, each seen active at B, revoked at A (RFC 7009), then introspected at B ` +
    `until inactive, while B served ${count(Math.round(background.perSecond))} introspections/s of another token ` +
    `(${background.connections} connections, p99 ${formatMs(background.p99Ms)} ms)`
  );
}

function revocationErrors(delay: RevocationDelay): number {
  return delay.errors + delay.background.errors;
}

export function revocationText(delay: RevocationDelay): string {
  const errors = revocationErrors(delay);
  return [
    `Revocation seen on another node: ${revocationSetting(delay)}.`,
    `  from A's answer to B's active:false: p50 ${formatMs(delay.p50Ms)} ms, p99 ${formatMs(delay.p99Ms)} ms, ` +
      `max ${formatMs(delay.maxMs)} ms; inactive at B's first look: ${count(delay.inactiveAtFirstLook)} of ${count(delay.tokens)}` +
      (delay.stillActive
        ? `; STILL ACTIVE after ${count(delay.watchLimitMs)} ms: ${count(delay.stillActive)}`
        : '') +
      `; ${errors === 0 ? '0 errors' : `${errors} FAILED`}`,
  ].join('\n');
}

function revocationMarkdown(delay: RevocationDelay): string[] {
  const errors = revocationErrors(delay);
  return [
    '## Revocation seen on another node',
    '',
    `${revocationSetting(delay)}. The delay runs from A's answer to the revocation until B's first active:false answer arrives.`,
    '',
    `| tokens | p50 ms | p99 ms | max ms | inactive at B's first look | still active after ${count(delay.watchLimitMs)} ms | errors |`,
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${count(delay.tokens)} | ${formatMs(delay.p50Ms)} | ${formatMs(delay.p99Ms)} | ${formatMs(delay.maxMs)} | ` +
      `${count(delay.inactiveAtFirstLook)} | ${count(delay.stillActive)} | ${errors === 0 ? '0' : `${errors} FAILED`} |`,
    '',
  ];
}

export function checksText(checks: Check[]): string {
  return checks
    .map((check) => `${check.met ? 'met   ' : 'MISSED'}  ${check.target}: ${check.measured}`)
    .join('\n');
}

export function markdownReport(report: Report): string {
  const { machine } = report;
  return [
    `# Passbook benchmark, ${report.finishedAt}`,
    '',
    `\`${report.command}\` on ${machine.cpus} × ${machine.cpuModel}, ${machine.memory} memory, ${machine.postgres} (${machine.database}), Node.js ${machine.node}.`,
    '',
    markdownTable(report.rows),
    '',
    ...notesText(report.rows).flatMap((note) => [note, '']),
    ...(report.revocation ? revocationMarkdown(report.revocation) : []),
    ...(report.signInBudget ? ['## Sign-in budget', '', signInBudgetText(report.signInBudget), ''] : []),
    '## Targets',
    '',
    ...report.checks.map(
      (check) => `- ${check.met ? 'met' : '**missed**'}: ${check.target} — ${check.measured}`,
    ),
    '',
    ...(report.failed.length
      ? ['## Failed workloads', '', ...report.failed.map((line) => `- ${line}`), '']
      : []),
    '## Settings',
    '',
    ...Object.entries(report.settings).map(([name, value]) => `- ${name}: ${value}`),
    '',
  ].join('\n');
}
