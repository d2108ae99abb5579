// The dispatch benchmark's tables: one row per phase, then the targets with PASS/MISS (report.ts's format).
import { type DispatchPhase, deliveriesPerSecond } from './dispatch-measure.js';
import { percentile } from './load.js';
import { integer, ms, percent, renderTable, type Target, targetTable } from './report.js';

// Above this much CPU taken by unrelated processes, a phase's figures are not representative.
const CONTENDED = 0.25;

export function dispatchTable(phases: DispatchPhase[]): string {
  const header = [
    'phase',
    'delivered',
    'deliv/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'hand-over ms',
    'signatures ok',
    'gen CPU',
    'server CPU',
    'recv CPU',
    'pg CPU',
    'other CPU',
    'machine',
  ];
  const cells = phases.map((p) => [
    p.label,
    `${p.received}/${p.expected}`,
    integer.format(deliveriesPerSecond(p)),
    ms(percentile(p.latenciesMs, 0.5)),
    ms(percentile(p.latenciesMs, 0.99)),
    ms(p.latenciesMs.at(-1) ?? Number.NaN),
    ms(p.handOverMs),
    `${p.verified}/${p.verified + p.rejected}`,
    percent(p.cpu.generator),
    percent(p.cpu.server),
    percent(p.cpu.receiver),
    percent(p.cpu.postgres),
    `${percent(p.cpu.other)}${p.cpu.other > CONTENDED ? ' *' : ''}`,
    percent(p.cpu.machine),
  ]);
  const table = renderTable(header, cells, 1);
  if (!phases.some((p) => p.cpu.other > CONTENDED)) return table;
  const note = `* other processes used more than ${percent(CONTENDED)} of a core during this phase`;
  return `${table}\n${note}: its figures understate what the machine can do`;
}

export interface DispatchTargets {
  heraldOverPgBoss: number;
  heraldOverRaw: number;
}

function rateRatio(a: DispatchPhase | undefined, b: DispatchPhase | undefined): number | undefined {
  if (!a || !b || a.received < a.expected || b.received < b.expected) return undefined;
  return deliveriesPerSecond(a) / deliveriesPerSecond(b);
}

/** Ratios of complete phases only: a phase that lost deliveries has no meaningful rate. */
export function dispatchTargetTable(
  herald: DispatchPhase | undefined,
  pgBoss: DispatchPhase | undefined,
  raw: DispatchPhase | undefined,
  targets: DispatchTargets,
): string {
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const rows: Target[] = [
    {
      label: 'Herald / pg-boss deliveries/s',
      value: rateRatio(herald, pgBoss),
      format: pct,
      pass: (v) => v >= targets.heraldOverPgBoss,
      target: `>= ${targets.heraldOverPgBoss * 100}%`,
    },
    {
      label: 'Herald / raw undici deliveries/s',
      value: rateRatio(herald, raw),
      format: pct,
      pass: (v) => v >= targets.heraldOverRaw,
      target: `>= ${targets.heraldOverRaw * 100}%`,
    },
  ];
  return targetTable(rows);
}
