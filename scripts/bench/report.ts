/**
 * The run's one table, its checks against the targets, and the JSON and Markdown written under
 * artifacts/bench/. The chart (chart.ts) is drawn from the same JSON.
 */

export type ServerName = 'Passbook' | 'in-memory ceiling';

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
  peakRssBytes: number;
  /** The server process's CPU during the timed run and warm-up, in cores (1 = one core busy). */
  serverCores: number;
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

export interface Report {
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  settings: Record<string, string | number>;
  rows: Row[];
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

function cells(rows: Row[], row: Row): string[] {
  const fraction = fractionOfCeiling(rows, row);
  return [
    row.label,
    row.server,
    formatRows(row.storedRows),
    `${Math.round(row.perSecond).toLocaleString('en-US')}${row.unit === 'flow' ? ' flows' : ''}`,
    fraction === undefined ? '' : `${Math.round(fraction * 100)}%`,
    formatMs(row.p50Ms),
    formatMs(row.p99Ms),
    row.errors === 0 ? '0' : `${row.errors} FAILED`,
    `${Math.round(row.peakRssBytes / MB)} MB`,
    `${row.serverCores.toFixed(2)} / ${row.loadCores.toFixed(2)} / ${row.machineCores.toFixed(2)}`,
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
