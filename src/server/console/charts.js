// Charts (uPlot, from AdminService.GetDeliveryStats): attempts that sent, attempts that did not (retries
// included), and the p95 attempt latency, per channel and minute over the last hour (the current minute
// included); refreshed every 15 seconds. A minute without a channel's figures counts 0 (its latency is a gap). Each figure also states its totals in text, and carries
// them as data-channels and data-total.
import { adminCall } from './api.js';
import { byId, CHANNELS, channelName } from './dom.js';
import { refresher } from './loading.js';

const WINDOW_MINUTES = 60;
const REFRESH_MS = 15_000;
const HEIGHT = 220;
const COLORS = { in_app: '#8b5cf6', push: '#06b6d4', email: '#3b82f6', sms: '#22c55e', webhook: '#f97316' };
const ORDER = CHANNELS.map((c) => c.toLowerCase());

const CHARTS = [
  { id: 'chart-sent', field: 'sent', unit: '' },
  { id: 'chart-failed', field: 'failed', unit: '' },
  { id: 'chart-latency', field: 'p95LatencyMs', unit: ' ms', latency: true },
];

/** The start of every minute in the window, oldest first, the current one last, in Unix seconds. */
function minutes(now) {
  const last = Math.floor(now / 60_000) * 60;
  return Array.from({ length: WINDOW_MINUTES }, (_, i) => last - (WINDOW_MINUTES - 1 - i) * 60);
}

/** uPlot's columns: the minutes, then one series per channel. */
function columns(points, chart, channels, xs) {
  const at = new Map(xs.map((x, i) => [x, i]));
  const series = channels.map(() => xs.map(() => (chart.latency ? null : 0)));
  for (const p of points) {
    const i = at.get(Math.floor(Date.parse(p.minute) / 1000));
    const c = channels.indexOf(channelName(p.channel));
    if (i === undefined || c < 0) continue;
    // `failed` counts every attempt that did not send, retries included.
    const attempts = Number(p.sent ?? 0) + Number(p.failed ?? 0);
    const value = Number(p[chart.field] ?? 0);
    series[c][i] = chart.latency ? (attempts > 0 ? value : null) : value;
  }
  return [xs, ...series];
}

function theme() {
  const style = getComputedStyle(document.body);
  return { text: style.getPropertyValue('--fg').trim(), grid: style.getPropertyValue('--grid').trim() };
}

function options(width, channels, chart, colors) {
  const axis = { stroke: colors.text, grid: { stroke: colors.grid }, ticks: { stroke: colors.grid } };
  const shown = (v) => (v === null || v === undefined ? '—' : `${v}${chart.unit}`);
  return {
    width,
    height: HEIGHT,
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max ?? 0)] } },
    series: [
      {},
      ...channels.map((c) => ({
        label: c,
        stroke: COLORS[c],
        width: 2,
        // Latency has gaps (minutes without attempts): a lone minute is a point, not a line.
        points: chart.latency ? { show: true, size: 6, fill: COLORS[c] } : { show: false },
        value: (_u, v) => shown(v),
      })),
    ],
    axes: [axis, { ...axis, size: 56 }],
  };
}

export function createChartsView(shell) {
  const section = byId('view-charts');
  const state = byId('charts-state');
  const figures = CHARTS.map((chart) => {
    const figure = byId(chart.id);
    return { chart, figure, host: figure.querySelector('.plot'), totals: figure.querySelector('.totals') };
  });

  function drawFigure(f, points, xs) {
    const channels = ORDER.filter((c) => points.some((p) => channelName(p.channel) === c));
    const data = columns(points, f.chart, channels, xs);
    const key = channels.join(',');
    if (f.plot && f.key === key) {
      f.plot.setData(data);
    } else {
      f.plot?.destroy();
      f.plot = new globalThis.uPlot(
        options(f.host.clientWidth || 600, channels, f.chart, theme()),
        data,
        f.host,
      );
      f.key = key;
    }
    const sums = channels.map((_c, i) => {
      const values = data[i + 1].filter((v) => v !== null);
      return f.chart.latency ? Math.max(0, ...values) : values.reduce((a, b) => a + b, 0);
    });
    f.figure.dataset.channels = key;
    f.figure.dataset.total = String(f.chart.latency ? Math.max(0, ...sums) : sums.reduce((a, b) => a + b, 0));
    f.totals.textContent =
      channels.length === 0
        ? 'Nothing in the last hour.'
        : channels
            .map((c, i) => `${c}: ${f.chart.latency ? `highest ${sums[i]} ms` : `${sums[i]} in the hour`}`)
            .join(' · ');
  }

  const refresh = refresher({
    shell,
    everyMs: REFRESH_MS,
    async ask() {
      if (!globalThis.uPlot) throw new Error('uPlot did not load');
      return adminCall('GetDeliveryStats', { windowMinutes: WINDOW_MINUTES });
    },
    draw(answer) {
      const points = answer.points ?? [];
      const xs = minutes(Date.now());
      for (const f of figures) drawFigure(f, points, xs);
      state.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshed every 15 seconds.`;
    },
  });

  function destroy() {
    for (const f of figures) {
      f.plot?.destroy();
      f.plot = undefined;
      f.key = undefined;
      f.totals.textContent = '';
      delete f.figure.dataset.total;
      delete f.figure.dataset.channels;
    }
  }

  addEventListener('resize', () => {
    for (const f of figures) f.plot?.setSize({ width: f.host.clientWidth || 600, height: HEIGHT });
  });
  // Axis and grid colours follow the colour scheme: drawn again when it changes.
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    if (section.hidden) return;
    destroy();
    refresh.start();
  });

  return {
    name: 'charts',
    section,
    enter: refresh.start,
    leave: refresh.stop,
    clear() {
      destroy();
      state.textContent = '';
    },
  };
}
