// The printed result: one row per phase, then the targets with PASS/MISS, then PGlite's figures
// against both baselines.
import { type LoadResult, percentile } from './load.js';

export type PhaseKind = 'send' | 'send-batch' | 'raw-tx' | 'raw-batch' | 'bare-rpc';

export interface PhaseRow {
  engine: 'postgres' | 'pglite';
  kind: PhaseKind;
  label: string;
  result: LoadResult;
  /** Problems found when checking what the phase stored. */
  notes: string[];
}

export interface Target {
  label: string;
  value: number | undefined;
  format: (value: number) => string;
  pass: (value: number) => boolean;
  target: string;
}

export function rate(result: LoadResult): number {
  return result.notifications / (result.elapsedMs / 1000);
}

// Above this much CPU taken by unrelated processes, a phase's figures are not representative.
const CONTENDED = 0.25;

export function isContended(result: LoadResult): boolean {
  return result.cpu.other > CONTENDED;
}

export const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
export const ms = (value: number) => (Number.isNaN(value) ? '-' : value.toFixed(1));
export const percent = (value: number | undefined) =>
  value === undefined || Number.isNaN(value) ? '-' : `${Math.round(value * 100)}%`;

/** A plain-text table: the first `leftAligned` columns left-aligned, the rest right-aligned. */
export function renderTable(header: string[], rows: string[][], leftAligned: number): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c < leftAligned ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function phaseTable(rows: PhaseRow[]): string {
  const header = [
    'engine',
    'phase',
    'notif/s',
    'calls/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'errors',
    'gen CPU',
    'server CPU',
    'pg CPU',
    'other CPU',
    'machine',
  ];
  const cells = rows.map(({ engine, label, result }) => [
    engine,
    label,
    integer.format(rate(result)),
    integer.format(result.calls / (result.elapsedMs / 1000)),
    ms(percentile(result.latenciesMs, 0.5)),
    ms(percentile(result.latenciesMs, 0.99)),
    ms(result.latenciesMs.at(-1) ?? Number.NaN),
    String(result.errors),
    percent(result.cpu.generator),
    percent(result.cpu.server),
    // PGlite runs inside the server (or this) process; the PostgreSQL cluster is idle then.
    engine === 'postgres' ? percent(result.cpu.postgres) : '-',
    `${percent(result.cpu.other)}${isContended(result) ? ' *' : ''}`,
    percent(result.cpu.machine),
  ]);
  const table = renderTable(header, cells, 2);
  if (!rows.some((r) => isContended(r.result))) return table;
  const note = `* other processes used more than ${percent(CONTENDED)} of a core during this phase`;
  return `${table}\n${note}: its figures understate what the machine can do`;
}

export function targetTable(targets: Target[]): string {
  const cells = targets.map((t) => {
    const verdict = t.value === undefined ? '-' : t.pass(t.value) ? 'PASS' : 'MISS';
    return [t.label, t.value === undefined ? '-' : t.format(t.value), t.target, verdict];
  });
  return renderTable(['measure', 'value', 'target', 'result'], cells, 1);
}

export function ratioTable(ratios: { label: string; value: number | undefined }[]): string {
  return renderTable(
    ['measure', 'ratio'],
    ratios.map((r) => [r.label, percent(r.value)]),
    1,
  );
}

export function find(rows: PhaseRow[], engine: PhaseRow['engine'], kind: PhaseKind): LoadResult | undefined {
  return rows.find((r) => r.engine === engine && r.kind === kind)?.result;
}

/** CPU per call, in µs, of the process `side` names (the server child, or this generator process). */
export function cpuPerCallUs(
  result: LoadResult | undefined,
  side: 'server' | 'generator',
): number | undefined {
  const share = result?.cpu[side];
  if (!result || share === undefined || result.calls === 0) return undefined;
  return (share * result.elapsedMs * 1_000) / result.calls;
}

export function ratio(a: LoadResult | undefined, b: LoadResult | undefined): number | undefined {
  return a && b ? rate(a) / rate(b) : undefined;
}
