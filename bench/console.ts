// `npm run bench -- console`: what the operator console's reads cost on a large history. Fills a fresh
// PostgreSQL database with a month of notifications (two deliveries and two attempts each; one in a hundred
// failed), plus one recent hour, then times each console RPC through a real Herald server against the same
// question asked of PostgreSQL directly without the window indexes (a scan of the table: what the cost
// would be if it followed the table's size). Bounded cost shows as a small ratio that stays small as
// --notifications grows.
//
//   npm run bench -- console [--notifications 1000000] [--recent 20000] [--repeat 15]
//   BENCH_DATABASE_URL=postgres://... (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
import { parseArgs } from 'node:util';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import postgres from 'postgres';
import { AdminService } from '../gen/herald/v1/admin_service_pb.js';
import { DeliveryStatus } from '../gen/herald/v1/types_pb.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { startHerald } from '../src/server/index.js';
import { createApiKey } from '../src/store/index.js';
import { createBenchDatabase } from './lib/bench-database.js';
import { Cleanup } from './lib/cleanup.js';
import { benchServerUrl, positiveInteger } from './lib/options.js';
import { integer, ms, renderTable } from './lib/report.js';

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function timed(repeat: number, run: () => Promise<unknown>): Promise<number> {
  await run(); // warm: plans cached, pages in memory, as on a console left open
  const times: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const start = performance.now();
    await run();
    times.push(performance.now() - start);
  }
  return median(times);
}

// One month before the recent hour, evenly spread; ids are UUIDs ordered like their time, as UUIDv7 are.
const FILL = `
with n as (
  insert into notifications (id, user_id, seq, type, priority, data, send_at, created_at)
  select gen_random_uuid(), 'user-' || (g % 50000), g, 'order.' || (g % 20), 2, '{}'::jsonb, t, t
  from (select g + $4 as g, $2::timestamptz - make_interval(secs => (($1 - g)::float8 / $1) * $3) as t
        from generate_series(1, $1) g) s
  returning id, user_id, created_at, seq
), d as (
  insert into deliveries (id, notification_id, user_id, channel, status, provider, attempts, next_attempt_at,
                          created_at, updated_at)
  select gen_random_uuid(), n.id, n.user_id, c.channel,
         case when c.channel = 'email' and n.seq % 100 = 0 then 'failed' else 'sent' end,
         c.channel, 2, n.created_at, n.created_at, n.created_at
  from n cross join (values ('email'), ('push')) c(channel)
  returning id, status, channel, created_at
)
insert into delivery_attempts (id, delivery_id, channel, provider, outcome, status_code, latency_ms, started_at)
select gen_random_uuid(), d.id, d.channel, d.channel, case when k = 1 or d.status = 'failed' then 'retry' else 'sent' end,
       case when k = 1 or d.status = 'failed' then 503 else 200 end, 20 + (random() * 200)::int,
       d.created_at + make_interval(secs => k)
from d cross join generate_series(1, 2) k`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      notifications: { type: 'string' },
      recent: { type: 'string' },
      repeat: { type: 'string' },
    },
  });
  const total = positiveInteger('--notifications', values.notifications, 1_000_000);
  const recent = positiveInteger('--recent', values.recent, 20_000);
  const repeat = positiveInteger('--repeat', values.repeat, 15);
  const cleanup = new Cleanup();
  try {
    const database = await createBenchDatabase(benchServerUrl());
    cleanup.add('drop the bench database', () => database.drop());
    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    cleanup.add('close the fill connection', () => sql.end({ timeout: 5 }));

    const now = new Date();
    const hourAgo = new Date(now.getTime() - 3_600_000);
    const filling = performance.now();
    // The month before the last hour, in chunks (one statement per chunk keeps memory flat), then the hour.
    const CHUNK = 200_000;
    for (let done = 0; done < total; done += CHUNK) {
      const n = Math.min(CHUNK, total - done);
      const chunkEnd = new Date(hourAgo.getTime() - (done / total) * 30 * 86_400_000);
      await sql.unsafe(FILL, [n, chunkEnd.toISOString(), ((n / total) * 30 * 86_400).toString(), done]);
    }
    await sql.unsafe(FILL, [recent, now.toISOString(), '3600', total]);
    await sql`vacuum analyze`;
    const [rows] = await sql<{ n: string; d: string; a: string }[]>`
      select (select count(*) from notifications) as n, (select count(*) from deliveries) as d,
             (select count(*) from delivery_attempts) as a`;
    process.stdout.write(
      `filled in ${((performance.now() - filling) / 1000).toFixed(1)} s: ${integer.format(Number(rows!.n))} notifications, ${integer.format(Number(rows!.d))} deliveries, ${integer.format(Number(rows!.a))} attempts (${integer.format(recent)} notifications in the last hour)\n\n`,
    );

    const config = loadConfig({
      DATABASE_URL: database.url,
      HERALD_HOST: '127.0.0.1',
      HERALD_PORT: '0',
      HERALD_DISPATCHER: 'false',
      HERALD_LOG_LEVEL: 'warn',
    });
    const herald = await startHerald({ config, logger: createLogger('warn') });
    cleanup.add('stop herald', () => herald.close());
    const { key } = await createApiKey(herald.database.db, 'bench-admin', ['admin']);
    const admin = createClient(
      AdminService,
      createConnectTransport({
        baseUrl: herald.url.replace('localhost', '127.0.0.1'),
        httpVersion: '1.1',
        interceptors: [
          (next) => (req) => {
            req.header.set('authorization', `Bearer ${key}`);
            return next(req);
          },
        ],
      }),
    );

    // The same questions asked without the window indexes: PostgreSQL reads the whole table.
    const scan = async (text: string, params: string[] = []) =>
      sql.begin(async (tx) => {
        await tx.unsafe(
          'set local enable_indexscan = off; set local enable_bitmapscan = off; set local enable_indexonlyscan = off',
        );
        return tx.unsafe(text, params);
      });
    const since = new Date(Math.floor(now.getTime() / 60_000 - 59) * 60_000).toISOString();
    const STATS_BY_SCAN = `select date_trunc('minute', a.started_at), d.channel, count(*) filter (where a.outcome = 'sent'),
        count(*) filter (where a.outcome <> 'sent'), percentile_cont(0.95) within group (order by a.latency_ms)
      from delivery_attempts a join deliveries d on d.id = a.delivery_id where a.started_at >= $1 group by 1, 2`;
    const cases: { name: string; herald: () => Promise<unknown>; scan: () => Promise<unknown> }[] = [
      {
        name: 'GetDeliveryStats (last hour, by minute)',
        herald: () => admin.getDeliveryStats({ windowMinutes: 60 }),
        scan: () => scan(STATS_BY_SCAN, [since]),
      },
      {
        name: 'GetProviderHealth (last 15 min)',
        herald: () => admin.getProviderHealth({}),
        scan: () =>
          scan(
            `select d.channel, a.provider, count(*) from delivery_attempts a join deliveries d on d.id = a.delivery_id
             where a.started_at >= $1 group by 1, 2`,
            [new Date(now.getTime() - 900_000).toISOString()],
          ),
      },
      {
        name: 'SearchNotifications (newest 50)',
        herald: () => admin.searchNotifications({}),
        scan: () => scan('select * from notifications order by created_at desc, id desc limit 50'),
      },
      {
        name: 'SearchNotifications (one user)',
        herald: () => admin.searchNotifications({ userId: 'user-777' }),
        scan: () =>
          scan(
            "select * from notifications where user_id = 'user-777' order by created_at desc, id desc limit 50",
          ),
      },
      {
        name: 'SearchNotifications (status FAILED)',
        herald: () => admin.searchNotifications({ status: DeliveryStatus.FAILED }),
        scan: () =>
          scan(`select * from notifications n where exists (select 1 from deliveries d where d.notification_id = n.id
                and d.status = 'failed') order by created_at desc, id desc limit 50`),
      },
    ];
    const table: string[][] = [];
    for (const c of cases) {
      const heraldMs = await timed(repeat, c.herald);
      const scanMs = await timed(Math.min(repeat, 3), c.scan);
      table.push([c.name, ms(heraldMs), ms(scanMs), `${((heraldMs / scanMs) * 100).toFixed(1)}%`]);
    }
    const [pages] = await sql<{ n: string }[]>`
      select count(*) as n from notifications n where exists (select 1 from deliveries d where d.notification_id = n.id and d.status = 'failed')`;
    process.stdout.write(
      `${renderTable(['median of each (ms)', 'herald RPC', 'table scan', 'herald/scan'], table, 1)}\n\n` +
        `herald RPC: through the server (Connect over HTTP/1.1, JSON decoding included); table scan: the same question in SQL with index scans off.\n` +
        `${integer.format(Number(pages!.n))} notifications have a failed delivery; a status search examines at most 5,000 per call.\n`,
    );
  } finally {
    await cleanup.runAll();
  }
}
