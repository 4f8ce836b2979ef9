import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Report, Row } from './report.ts';
import { THROUGHPUT_TARGETS } from './targets.ts';

/**
 * Draws a benchmark report (JSON) as an SVG bar chart: each workload's requests/s on Passbook,
 * on two Passbook processes, on the stored-data runs and on the in-memory ceiling, against its
 * target, on a log scale. The revocation delay is no rate and stays in the report's text.
 *
 *   npm run bench:chart -- [report.json] [out.svg]
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const WIDTH = 960;
const LABEL_WIDTH = 330;
const PLOT_WIDTH = WIDTH - LABEL_WIDTH - 90;
const BAR = 16;
const GAP = 4;
const GROUP_GAP = 14;
const TOP = 84;
const MIN_RATE = 10;
const MAX_RATE = 100_000;
const COLORS = {
  Passbook: '#1d4e89',
  twoNodes: '#2e8b57',
  stored: '#6a9fd4',
  ceiling: '#9aa0a6',
  target: '#c0392b',
};

interface Bar {
  label: string;
  perSecond: number;
  color: string;
  failed: boolean;
}

interface Group {
  title: string;
  target: number | undefined;
  bars: Bar[];
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function x(rate: number): number {
  const clamped = Math.min(MAX_RATE, Math.max(MIN_RATE, rate));
  const share = (Math.log10(clamped) - Math.log10(MIN_RATE)) / (Math.log10(MAX_RATE) - Math.log10(MIN_RATE));
  return LABEL_WIDTH + share * PLOT_WIDTH;
}

function barOf(row: Row): Bar {
  const bar = (label: string, color: string): Bar => ({
    label,
    color,
    perSecond: row.perSecond,
    failed: row.errors > 0,
  });
  if (row.server === 'in-memory ceiling') return bar('in-memory ceiling', COLORS.ceiling);
  if (row.server === 'Passbook ×2') return bar('Passbook ×2, one database', COLORS.twoNodes);
  if (row.filled) return bar(`Passbook, +${row.filled.toLocaleString('en-US')} stored rows`, COLORS.stored);
  return bar(row.server, COLORS.Passbook);
}

function groupsOf(report: Report): Group[] {
  const workloads = [...new Set(report.rows.map((row) => row.workload))];
  return workloads.map((workload) => {
    const rows = report.rows.filter((row) => row.workload === workload);
    const title = rows[0]?.label ?? workload;
    return { title, target: THROUGHPUT_TARGETS[workload], bars: rows.map(barOf) };
  });
}

function axis(height: number): string[] {
  const lines: string[] = [];
  for (let rate = MIN_RATE; rate <= MAX_RATE; rate *= 10) {
    const at = x(rate).toFixed(1);
    lines.push(`<line x1="${at}" y1="${TOP - 8}" x2="${at}" y2="${height - 28}" stroke="#ddd"/>`);
    lines.push(
      `<text x="${at}" y="${height - 12}" text-anchor="middle" class="axis">${rate.toLocaleString('en-US')}/s</text>`,
    );
  }
  return lines;
}

function groupSvg(group: Group, top: number): string[] {
  const parts = [`<text x="12" y="${top + 12}" class="title">${escape(group.title)}</text>`];
  group.bars.forEach((bar, index) => {
    const y = top + 18 + index * (BAR + GAP);
    const end = x(bar.perSecond);
    const value = `${Math.round(bar.perSecond).toLocaleString('en-US')}/s${bar.failed ? ' (errors)' : ''}`;
    parts.push(
      `<text x="${LABEL_WIDTH - 8}" y="${y + 12}" text-anchor="end" class="label">${escape(bar.label)}</text>`,
      `<rect x="${LABEL_WIDTH}" y="${y}" width="${(end - LABEL_WIDTH).toFixed(1)}" height="${BAR}" fill="${bar.color}"/>`,
      `<text x="${(end + 6).toFixed(1)}" y="${y + 12}" class="value">${escape(value)}</text>`,
    );
  });
  if (group.target !== undefined) {
    const at = x(group.target).toFixed(1);
    const bottom = top + 18 + group.bars.length * (BAR + GAP) - GAP;
    parts.push(
      `<line x1="${at}" y1="${top + 14}" x2="${at}" y2="${bottom + 2}" stroke="${COLORS.target}" stroke-width="2" stroke-dasharray="4 2"/>`,
      `<text x="${at}" y="${top + 10}" text-anchor="middle" class="target">target ${group.target.toLocaleString('en-US')}/s</text>`,
    );
  }
  return parts;
}

function legend(): string[] {
  const items: [string, string][] = [
    ['Passbook', COLORS.Passbook],
    ['two Passbook processes', COLORS.twoNodes],
    ['Passbook on a pre-filled token table', COLORS.stored],
    ['oidc-provider in-memory ceiling', COLORS.ceiling],
  ];
  const parts: string[] = [];
  let left = 12;
  for (const [label, color] of items) {
    parts.push(`<rect x="${left}" y="46" width="12" height="12" fill="${color}"/>`);
    parts.push(`<text x="${left + 18}" y="56" class="label">${escape(label)}</text>`);
    left += 30 + label.length * 6.6;
  }
  parts.push(
    `<line x1="${left}" y1="52" x2="${left + 16}" y2="52" stroke="${COLORS.target}" stroke-width="2" stroke-dasharray="4 2"/>`,
    `<text x="${left + 22}" y="56" class="label">target</text>`,
  );
  return parts;
}

export function chartSvg(report: Report): string {
  const groups = groupsOf(report);
  const heights = groups.map((group) => 18 + group.bars.length * (BAR + GAP) + GROUP_GAP);
  const height = TOP + heights.reduce((sum, h) => sum + h, 0) + 36;
  const body: string[] = [];
  let top = TOP;
  groups.forEach((group, index) => {
    body.push(...groupSvg(group, top));
    top += heights[index] ?? 0;
  });
  const { machine } = report;
  const subtitle = `${machine.cpus} × ${machine.cpuModel}, ${machine.postgres} on the same machine · ${report.command} · ${report.finishedAt.slice(0, 10)}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif">`,
    '<style>.title{font-size:13px;font-weight:600;fill:#222}.label{font-size:12px;fill:#333}.value{font-size:11px;fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px}.axis{font-size:11px;fill:#666}.target{font-size:10px;fill:#c0392b;paint-order:stroke;stroke:#fff;stroke-width:3px}.sub{font-size:11px;fill:#555}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="20" class="title">Passbook throughput per workload (requests/s, sign-in in whole flows/s; log scale)</text>`,
    `<text x="12" y="36" class="sub">${escape(subtitle)}</text>`,
    ...legend(),
    ...axis(height),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const [input = 'artifacts/bench/latest.json', output = 'docs/benchmark.svg'] = process.argv.slice(2);
  const report = JSON.parse(await readFile(path.resolve(ROOT, input), 'utf8')) as Report;
  await writeFile(path.resolve(ROOT, output), chartSvg(report));
  process.stdout.write(`${output} drawn from ${input}\n`);
}

if (import.meta.main) await main();
