// The e-mail benchmark's tables: one row per phase, then the target with PASS/MISS (report.ts's format).
import type { EmailPhase } from './email-bare.js';
import { percentile } from './load.js';
import { deliveriesPerSecond, type PushPhase } from './push-measure.js';
import { integer, ms, percent, renderTable, type Target, targetTable } from './report.js';

// Above this much CPU taken by unrelated processes, a phase's figures are not representative.
const CONTENDED = 0.25;

export function emailTable(phases: EmailPhase[]): string {
  const header = [
    'phase',
    'delivered',
    'e-mails/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'hand-over ms',
    'checks ok',
    'recorded sent',
    'SMTP conns',
    'gen CPU',
    'server CPU',
    'emu CPU',
    'pg CPU',
    'other CPU',
    'machine',
  ];
  const cells = phases.map((p) => [
    p.label,
    `${p.delivered}/${p.expected}`,
    integer.format(deliveriesPerSecond(p)),
    ms(percentile(p.latenciesMs, 0.5)),
    ms(percentile(p.latenciesMs, 0.99)),
    ms(p.latenciesMs.at(-1) ?? Number.NaN),
    ms(p.handOverMs),
    `${p.verified}/${p.delivered}`,
    p.recorded === undefined ? '-' : `${p.recorded}/${p.expected}`,
    String(p.sessions),
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

/** The ratio of complete, fully verified phases only: a phase that lost or garbled e-mails has no rate. */
export function emailTargetTable(
  herald: EmailPhase | undefined,
  bare: EmailPhase | undefined,
  heraldOverBare: number,
): string {
  const complete = (p: PushPhase | undefined): p is PushPhase =>
    p !== undefined && p.delivered === p.expected && p.verified === p.delivered;
  const rows: Target[] = [
    {
      label: 'Herald / bare nodemailer e-mails/s',
      value:
        complete(herald) && complete(bare)
          ? deliveriesPerSecond(herald) / deliveriesPerSecond(bare)
          : undefined,
      format: (v) => `${(v * 100).toFixed(1)}%`,
      pass: (v) => v >= heraldOverBare,
      target: `>= ${heraldOverBare * 100}%`,
    },
  ];
  return targetTable(rows);
}
