// Providers (AdminService.GetProviderHealth): per provider its circuit on every instance, its rate limit, and
// its attempts, failures, p95 latency and latest errors over the chosen window; refreshed every 10 seconds.
import { adminCall } from './api.js';
import { byId, channelName, chip, el, row, time } from './dom.js';
import { refresher } from './loading.js';

const REFRESH_MS = 10_000;

function circuits(list = []) {
  if (list.length === 0) return el('span', { className: 'muted', textContent: 'no report' });
  return el(
    'ul',
    { className: 'plain' },
    list.map((c) =>
      el('li', { dataset: { state: c.state ?? '' } }, [
        chip((c.state ?? 'unknown').replace('_', ' '), c.state),
        ' ',
        el('span', { className: 'muted', textContent: c.instance ?? '' }),
      ]),
    ),
  );
}

function rateLimit(p) {
  if (!p.ratePerSecond) return 'none';
  return `${p.ratePerSecond}/s, burst ${p.burst ?? 0}`;
}

function lastErrors(list = []) {
  if (list.length === 0) return el('span', { className: 'muted', textContent: 'none' });
  return el(
    'ul',
    { className: 'plain errors' },
    list.map((e) =>
      el('li', {}, [
        time(e.at),
        ' ',
        chip(e.outcome ?? ''),
        e.statusCode ? ` ${e.statusCode}` : '',
        ' ',
        el('span', { textContent: e.error ?? '' }),
      ]),
    ),
  );
}

export function createProvidersView(shell) {
  const section = byId('view-providers');
  const tbody = byId('providers-table').tBodies[0];
  const state = byId('providers-state');
  const windowSelect = byId('providers-window');
  const refresh = refresher({
    shell,
    everyMs: REFRESH_MS,
    ask: () => adminCall('GetProviderHealth', { windowMinutes: Number(windowSelect.value) }),
    draw,
  });

  // A changed window asks again at once and drops the answer for the old one: the answer is for this window.
  function draw(answer) {
    const minutes = Number(windowSelect.value);
    const providers = answer.providers ?? [];
    tbody.replaceChildren(
      ...providers.map((p) => {
        const failures = Number(p.failures ?? 0);
        return row(
          [
            channelName(p.channel),
            p.provider ?? '',
            circuits(p.circuits),
            rateLimit(p),
            String(p.attempts ?? 0),
            failures > 0 ? chip(String(failures), 'failed') : '0',
            p.p95LatencyMs ? `${p.p95LatencyMs} ms` : '—',
            lastErrors(p.lastErrors),
          ],
          { dataset: { provider: p.provider ?? '', channel: channelName(p.channel) } },
        );
      }),
    );
    const instances = answer.instances ?? [];
    state.textContent =
      `${providers.length} provider${providers.length === 1 ? '' : 's'} over the last ${minutes} minutes; ` +
      `circuits from ${instances.length} instance${instances.length === 1 ? '' : 's'} (${instances.join(', ')}). ` +
      `Updated ${new Date().toLocaleTimeString()}.`;
  }

  windowSelect.addEventListener('change', refresh.start);

  return {
    name: 'providers',
    section,
    enter: refresh.start,
    leave: refresh.stop,
    clear() {
      tbody.replaceChildren();
      state.textContent = '';
    },
  };
}
