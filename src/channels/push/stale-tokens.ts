// The periodic sweep that deactivates push tokens not seen for a long time (reason "stale"): an app that was
// deleted or not opened for months leaves a token that providers may keep accepting while no device shows
// anything. RegisterToken refreshes a token's last_seen_at, so a live app keeps its tokens.
import type { Logger } from 'pino';
import { deactivateStaleTokens, type SqlRunner } from '../../store/index.js';
import type { PushMetrics } from './metrics.js';

export interface StaleTokenSweepOptions {
  sql: SqlRunner;
  /** A token not seen for this long is stale (HERALD_PUSH_TOKEN_STALE_DAYS). */
  staleMs: number;
  /** How often the sweep runs; the first run is a minute after start, out of the way of start-up. */
  intervalMs: number;
  now: () => Date;
  metrics: PushMetrics;
  logger: Logger;
}

const FIRST_RUN_DELAY_MS = 60_000;

export function startStaleTokenSweep(options: StaleTokenSweepOptions): {
  sweep(): Promise<number>;
  close(): void;
} {
  async function sweep(): Promise<number> {
    const before = new Date(options.now().getTime() - options.staleMs);
    const counts = await deactivateStaleTokens(options.sql, before);
    let total = 0;
    for (const [platform, n] of counts) {
      options.metrics.deactivated(platform, 'stale', n);
      total += n;
    }
    if (total > 0)
      options.logger.info({ deactivated: Object.fromEntries(counts) }, 'stale push tokens deactivated');
    return total;
  }
  const run = () => {
    sweep().catch((error) =>
      options.logger.warn({ err: error }, 'stale push token sweep failed; retrying later'),
    );
  };
  const first = setTimeout(run, Math.min(FIRST_RUN_DELAY_MS, options.intervalMs));
  const timer = setInterval(run, options.intervalMs);
  first.unref();
  timer.unref();
  return {
    sweep,
    close() {
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
