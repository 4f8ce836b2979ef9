import { expect } from '@jest/globals';
import { parseOptions, UsageError } from '../../scripts/bench/options.ts';
import {
  markdownReport,
  markdownTable,
  notesText,
  revocationText,
  type Report,
  type RevocationDelay,
  type Row,
} from '../../scripts/bench/report.ts';
import { checkTargets, failedRows } from '../../scripts/bench/targets.ts';
import { signInBudget, signInBudgetText } from '../../scripts/bench/sign-in-budget.ts';

/** The benchmark's verdicts, on made-up figures: nothing here is timed. */

function row(overrides: Partial<Row>): Row {
  return {
    workload: 'introspection',
    label: 'Introspection',
    server: 'Passbook',
    storedRows: 10,
    filled: 0,
    connections: 10,
    perSecond: 3_200,
    p50Ms: 2,
    p99Ms: 9,
    requestP99Ms: 9,
    errors: 0,
    peakRssBytes: 200 * 1024 * 1024,
    serverCores: 1,
    loadCores: 0.2,
    machineCores: 1.6,
    unit: 'request',
    ...overrides,
  };
}

test('a workload with errors is reported as failed, with why, and shown in the table', () => {
  const rows = [
    row({}),
    row({ workload: 'refresh', label: 'Refresh', errors: 3, errorSample: '3× HTTP 400' }),
  ];

  expect(failedRows(rows)).toEqual([expect.stringContaining('Refresh (Passbook): 3 errors — 3× HTTP 400')]);
  expect(markdownTable(rows)).toContain('3 FAILED');
});

test('introspection is judged against the ceiling, and the million-row run against the empty table', () => {
  const rows = [
    row({}),
    row({ server: 'in-memory ceiling', storedRows: null, filled: null, perSecond: 8_000 }),
    row({ filled: 1_000_000, perSecond: 2_800 }),
  ];

  const checks = checkTargets(rows);

  expect(checks).toContainEqual({
    target: 'Introspection ≥ 60% of the in-memory ceiling',
    measured: '40%',
    met: false,
  });
  expect(checks).toContainEqual(
    expect.objectContaining({ target: expect.stringContaining('1,000,000 stored rows'), met: false }),
  );
  expect(checks).toContainEqual(expect.objectContaining({ target: 'Introspection ≥ 3,000/s', met: true }));
});

test('refresh is judged against its own ceiling, at 55%', () => {
  const refresh = { workload: 'refresh', label: 'Refresh' };
  const checks = checkTargets([
    row({ ...refresh, perSecond: 850 }),
    row({ ...refresh, server: 'in-memory ceiling', storedRows: null, filled: null, perSecond: 1_500 }),
  ]);
  expect(checks).toContainEqual({
    target: 'Refresh ≥ 55% of the in-memory ceiling',
    measured: '57%',
    met: true,
  });
});

const MB = 1024 * 1024;

function delay(overrides: Partial<RevocationDelay>): RevocationDelay {
  return {
    tokens: 1_000,
    p50Ms: 3,
    p99Ms: 12,
    maxMs: 30,
    inactiveAtFirstLook: 1_000,
    stillActive: 0,
    watchLimitMs: 2_000,
    errors: 0,
    background: { connections: 10, perSecond: 2_000, p99Ms: 10, errors: 0 },
    ...overrides,
  };
}

function report(rows: Row[], revocation?: RevocationDelay): Report {
  return {
    command: 'npm run bench -- --quick',
    startedAt: '2026-12-03T10:00:00.000Z',
    finishedAt: '2026-12-03T10:02:00.000Z',
    machine: {
      cpus: 2,
      cpuModel: 'Test CPU',
      memory: '8.0 GiB',
      postgres: 'PostgreSQL 15',
      database: 'test',
      node: 'v24',
      os: 'Linux',
    },
    settings: {},
    rows,
    revocation,
    checks: checkTargets(rows, revocation),
    failed: failedRows(rows, revocation),
  };
}

test('two processes are shown with each one’s memory and CPU, and against one process', () => {
  const rows = [
    row({}),
    row({
      server: 'Passbook ×2',
      perSecond: 4_800,
      peakRssBytes: 612 * MB,
      serverCores: 1.8,
      processes: [
        { name: 'Passbook', peakRssBytes: 306 * MB, cores: 0.9 },
        { name: 'Passbook B', peakRssBytes: 306 * MB, cores: 0.9 },
      ],
    }),
  ];

  const table = markdownTable(rows);

  expect(table).toContain('| Introspection | Passbook ×2 |');
  expect(table).toContain('612 MB (306 + 306)');
  expect(table).toContain('1.80 (0.90 + 0.90) / 0.20 / 1.60');
  expect(notesText(rows)).toContainEqual('Two processes against one: Introspection ×1.50.');
  // The one-process targets and the memory check are about one process only.
  expect(checkTargets(rows)).toContainEqual({
    target: 'Passbook peak RSS < 250 MB',
    measured: '200 MB',
    met: true,
  });
});

test('the bank API’s row says that each request includes an introspection at Passbook', () => {
  const rows = [row({ workload: 'bank-api', label: 'Bank API', server: 'bank API → Passbook' })];

  expect(markdownTable(rows)).toContain('| Bank API | bank API → Passbook |');
  expect(notesText(rows)).toContainEqual(expect.stringContaining('each with one introspection at Passbook'));
});

test('the revocation delay has a section of its own and is judged at its p99', () => {
  const quick = report([row({})], delay({}));
  const slow = report([row({})], delay({ p99Ms: 2_000, maxMs: 2_000, stillActive: 30 }));

  expect(quick.checks).toContainEqual(
    expect.objectContaining({ target: 'Revocation seen on another node: p99 < 50 ms', met: true }),
  );
  expect(slow.checks).toContainEqual(
    expect.objectContaining({ target: 'Revocation seen on another node: p99 < 50 ms', met: false }),
  );
  expect(markdownReport(quick)).toContain('## Revocation seen on another node');
  expect(markdownReport(quick)).toContain('| 1,000 | 3.0 | 12.0 | 30.0 | 1,000 | 0 | 0 |');
  expect(revocationText(slow.revocation ?? delay({}))).toContain('STILL ACTIVE after 2,000 ms: 30');
  expect(slow.failed).toEqual([]);
  expect(markdownReport(report([row({})]))).not.toContain('Revocation');
});

test('errors while measuring the revocation delay fail the run, with why', () => {
  const failed = report([row({})], delay({ errors: 2, errorSample: 'revocation at A: 400' })).failed;

  expect(failed).toEqual(['Revocation seen on another node: 2 errors — revocation at A: 400']);
});

test('--only takes the new workloads and refuses an unknown one', () => {
  expect(parseOptions(['--only', 'two-nodes,revocation-delay,bank-api']).only).toEqual([
    'two-nodes',
    'revocation-delay',
    'bank-api',
  ]);
  expect(() => parseOptions(['--only', 'two-node'])).toThrow(UsageError);
});

test("the sign-in budget splits a flow's CPU into the hash and the rest, against the target's", () => {
  const signIn = row({
    workload: 'sign-in',
    unit: 'flow',
    perSecond: 25,
    serverCores: 1.25,
    loadCores: 0.1,
    machineCores: 1.6,
  });
  const budget = signInBudget(signIn, 20, 2, 60);
  expect(budget.passbookOtherMs).toBeCloseTo(30);
  expect(budget.databaseAndRestMs).toBeCloseTo(10);
  expect(budget.loadGeneratorMs).toBeCloseTo(4);
  expect(budget.budgetAtTargetMs).toBeCloseTo(33.3, 1);
  const text = signInBudgetText(budget);
  expect(text).toContain('after the hash, 13.3 ms');
  expect(text).toContain('which took 44.0 ms');
  expect(text).toContain('the cores fit 31 flows/s; with nothing but the hash, 100');
});
