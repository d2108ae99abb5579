// Table rendering and number formats for the real-time benchmarks (the layout of report.ts's tables).
import { percentile } from './load.js';
import type { RealtimeCpu } from './realtime-cpu.js';
import { ms, percent, renderTable } from './report.js';

export { ms, percent, renderTable };

// Above this much CPU taken by unrelated processes, a phase's figures are not representative.
export const CONTENDED = 0.25;

const integerFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export const integer = (value: number) => (Number.isFinite(value) ? integerFormat.format(value) : '-');
export const kib = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : '-');
export const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

/** p50, p99 and max of an ascending array, formatted. */
export function latencyCells(sorted: Float64Array): string[] {
  return [
    ms(percentile(sorted, 0.5)),
    ms(percentile(sorted, 0.99)),
    ms(sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN),
  ];
}

export const CPU_HEADER = ['gen CPU', 'gen busiest', 'server CPU', 'pg CPU', 'other CPU', 'machine'];

export function cpuCells(cpu: RealtimeCpu): string[] {
  return [
    percent(cpu.generator),
    percent(cpu.generatorBusiestProcess),
    percent(cpu.server),
    percent(cpu.postgres),
    `${percent(cpu.other)}${cpu.other > CONTENDED ? ' *' : ''}`,
    percent(cpu.machine),
  ];
}

export const CPU_LEGEND =
  'CPU columns: share of one core over the phase (100% = one core busy): gen = every load-generator ' +
  'process together, gen busiest = the busiest one of them, server = the server child, pg = backends of ' +
  'the bench database, other = everything else (* = above 25%: figures understate the machine); ' +
  'machine = all cores';
