// AdminService's operator views: notifications across every user (the console's activity view), each
// provider's health, and delivery figures by minute. Every RPC needs the "admin" scope: they show every
// user's notifications and every provider's errors.
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext } from '@connectrpc/connect';
import {
  type GetDeliveryStatsRequest,
  type GetDeliveryStatsResponse,
  GetDeliveryStatsResponseSchema,
  type GetProviderHealthRequest,
  type GetProviderHealthResponse,
  GetProviderHealthResponseSchema,
  type ProviderHealth,
  ProviderHealthSchema,
  type SearchNotificationsRequest,
  type SearchNotificationsResponse,
  SearchNotificationsResponseSchema,
} from '../../gen/herald/v1/admin_service_pb.js';
import { Channel, DeliveryStatus } from '../../gen/herald/v1/types_pb.js';
import { HeraldError, invalidArgument } from '../core/errors.js';
import { optionalUuid } from '../core/ids.js';
import { checkId } from '../core/rules.js';
import type { ProviderHealthSource } from '../delivery/provider-health.js';
import {
  type Database,
  deliveryStats,
  notificationExists,
  providerAttempts,
  searchNotifications,
} from '../store/index.js';
import { requireServiceScope } from './auth.js';
import { channelFromProto, channelToProtoValue, notificationToProto, statusFromProto } from './convert.js';
import { timestampToDate } from './send-request.js';

const DEFAULT_PAGE = 50;
const MAX_PAGE = 200;
const DEFAULT_HEALTH_WINDOW_MINUTES = 15;
const MAX_HEALTH_WINDOW_MINUTES = 60;
const DEFAULT_STATS_WINDOW_MINUTES = 60;
const MAX_STATS_WINDOW_MINUTES = 6 * 60;
const LAST_ERRORS = 5;

export interface OperationsDeps {
  database: Database;
  providerHealth: ProviderHealthSource;
  now: () => Date;
}

function optionalId(field: string, value: string): string | undefined {
  if (value === '') return undefined;
  const problem = checkId(value);
  if (problem) throw invalidArgument(field, problem);
  return value;
}

function windowMinutes(field: string, value: number, fallback: number, max: number): number {
  if (value < 0 || value > max) throw invalidArgument(field, `must be 0..${max} (0: ${fallback})`);
  return value || fallback;
}

export function operationsHandlers({ database, providerHealth, now }: OperationsDeps) {
  return {
    async searchNotifications(
      req: SearchNotificationsRequest,
      ctx: HandlerContext,
    ): Promise<SearchNotificationsResponse> {
      requireServiceScope(ctx, 'admin');
      const channel = req.channel === Channel.UNSPECIFIED ? undefined : channelFromProto(req.channel);
      if (req.channel !== Channel.UNSPECIFIED && channel === undefined) {
        throw invalidArgument('channel', 'must be a known channel');
      }
      const status = req.status === DeliveryStatus.UNSPECIFIED ? undefined : statusFromProto(req.status);
      if (req.status !== DeliveryStatus.UNSPECIFIED && status === undefined) {
        throw invalidArgument('status', 'must be a known delivery status');
      }
      const createdAfter = req.createdAfter && timestampToDate('created_after', req.createdAfter);
      const createdBefore = req.createdBefore && timestampToDate('created_before', req.createdBefore);
      if (createdAfter && createdBefore && createdAfter >= createdBefore) {
        throw invalidArgument('created_before', 'must be later than created_after');
      }
      if (req.limit < 0 || req.limit > MAX_PAGE) throw invalidArgument('limit', `must be 0..${MAX_PAGE}`);
      const before = optionalUuid('cursor', req.cursor, 'a notification id');
      const after = optionalUuid('after_id', req.afterId, 'a notification id');
      if (before && after) throw invalidArgument('after_id', 'cannot be combined with cursor');
      for (const [field, id] of [
        ['cursor', before],
        ['after_id', after],
      ] as const) {
        if (id && !(await notificationExists(database.db, id))) {
          throw new HeraldError('not_found', 'names no notification', field);
        }
      }
      const limit = req.limit || DEFAULT_PAGE;
      const { found, scannedTo } = await searchNotifications(database.db, {
        userId: optionalId('user_id', req.userId),
        type: optionalId('type', req.type),
        channel,
        status,
        endpointId: optionalUuid('endpoint_id', req.endpointId, 'a webhook endpoint id'),
        createdAfter,
        createdBefore,
        before,
        after,
        limit: limit + 1,
      });
      const page = found.slice(0, limit);
      // Where the next call goes on (as cursor, or as after_id when tailing): after this page when there is
      // more, or where a bounded scan stopped short of a full page.
      const next = found.length > limit ? page.at(-1)!.notification.id : scannedTo;
      return create(SearchNotificationsResponseSchema, {
        notifications: page.map(notificationToProto),
        nextCursor: next ?? '',
      });
    },

    async getProviderHealth(
      req: GetProviderHealthRequest,
      ctx: HandlerContext,
    ): Promise<GetProviderHealthResponse> {
      requireServiceScope(ctx, 'admin');
      const minutes = windowMinutes(
        'window_minutes',
        req.windowMinutes,
        DEFAULT_HEALTH_WINDOW_MINUTES,
        MAX_HEALTH_WINDOW_MINUTES,
      );
      const since = new Date(now().getTime() - minutes * 60_000);
      const [recent, reports] = await Promise.all([
        providerAttempts(database.sql, since, LAST_ERRORS),
        providerHealth.circuits(),
      ]);
      const key = (channel: string, provider: string) => `${channel}\u0000${provider}`;
      const entries = new Map<string, ProviderHealth>();
      const entry = (channel: string, provider: string) => {
        const k = key(channel, provider);
        let found = entries.get(k);
        if (!found) {
          found = create(ProviderHealthSchema, { channel: channelToProtoValue(channel), provider });
          entries.set(k, found);
        }
        return found;
      };
      // Configured providers first, in failover order; then any provider that made attempts in the window
      // but is configured no more (a reload removed it), so its errors stay visible.
      for (const p of providerHealth.providers()) {
        const health = entry(p.channel, p.provider);
        health.ratePerSecond = p.rateLimit?.perSecond ?? 0;
        health.burst = p.rateLimit?.burst ?? 0;
      }
      for (const r of recent.attempts) {
        const health = entry(r.channel, r.provider);
        health.attempts = BigInt(r.attempts);
        health.failures = BigInt(r.failures);
        health.p95LatencyMs = r.p95LatencyMs;
      }
      for (const e of recent.errors) {
        entry(e.channel, e.provider).lastErrors.push({
          $typeName: 'herald.v1.ProviderError',
          at: timestampFromDate(e.at),
          outcome: e.outcome,
          statusCode: e.statusCode ?? 0,
          error: e.error ?? '',
          deliveryId: e.deliveryId,
        });
      }
      for (const report of reports) {
        for (const c of report.circuits) {
          entry(c.channel, c.provider).circuits.push({
            $typeName: 'herald.v1.ProviderCircuit',
            instance: report.instance,
            state: c.state,
            reportedAt: timestampFromDate(new Date(report.at)),
          });
        }
      }
      return create(GetProviderHealthResponseSchema, {
        providers: [...entries.values()],
        instances: reports.map((r) => r.instance),
      });
    },

    async getDeliveryStats(
      req: GetDeliveryStatsRequest,
      ctx: HandlerContext,
    ): Promise<GetDeliveryStatsResponse> {
      requireServiceScope(ctx, 'admin');
      const minutes = windowMinutes(
        'window_minutes',
        req.windowMinutes,
        DEFAULT_STATS_WINDOW_MINUTES,
        MAX_STATS_WINDOW_MINUTES,
      );
      // Whole minutes: the first point is a full minute, not the tail of one.
      const since = new Date(Math.floor(now().getTime() / 60_000 - minutes + 1) * 60_000);
      const rows = await deliveryStats(database.sql, since);
      return create(GetDeliveryStatsResponseSchema, {
        points: rows.map((r) => ({
          minute: timestampFromDate(new Date(r.minute)),
          channel: channelToProtoValue(r.channel),
          created: BigInt(r.created),
          sent: BigInt(r.sent),
          failed: BigInt(r.failed),
          retried: BigInt(r.retried),
          p95LatencyMs: r.p95LatencyMs,
        })),
      });
    },
  };
}
