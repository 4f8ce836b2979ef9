import { expect } from '@jest/globals';
import { markdownTable, type Row } from '../../scripts/bench/report.ts';
import { checkTargets, failedRows } from '../../scripts/bench/targets.ts';

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
