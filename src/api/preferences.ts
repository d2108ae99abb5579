// GetPreferences and UpdatePreferences. Evaluation at send time belongs to the delivery engine.
import { create } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';
import {
  type GetPreferencesRequest,
  type GetPreferencesResponse,
  GetPreferencesResponseSchema,
  type UpdatePreferencesRequest,
  type UpdatePreferencesResponse,
  UpdatePreferencesResponseSchema,
} from '../../gen/herald/v1/notification_service_pb.js';
import type { Channel, QuietHours } from '../../gen/herald/v1/types_pb.js';
import type { ChannelName } from '../core/channels.js';
import { invalidArgument } from '../core/errors.js';
import { checkClockTime, checkId, checkTimezone } from '../core/rules.js';
import { type Db, getPreferences, type PreferencesPatch, updatePreferences } from '../store/index.js';
import { actingUser } from './auth.js';
import { channelFromProto, preferencesToProto } from './convert.js';

const MAX_TYPE_SWITCHES = 500;

function channel(field: string, value: Channel): ChannelName {
  const name = channelFromProto(value);
  if (!name) throw invalidArgument(field, 'must be IN_APP, PUSH, EMAIL, SMS or WEBHOOK');
  return name;
}

function quietHours(value: QuietHours): { start: string; end: string; timezone: string } {
  for (const part of ['start', 'end'] as const) {
    const problem = checkClockTime(value[part]);
    if (problem) throw invalidArgument(`quiet_hours.${part}`, problem);
  }
  if (value.start === value.end)
    throw invalidArgument('quiet_hours.end', 'must differ from quiet_hours.start');
  const zoneProblem = checkTimezone(value.timezone);
  if (zoneProblem) throw invalidArgument('quiet_hours.timezone', zoneProblem);
  return { start: value.start, end: value.end, timezone: value.timezone };
}

function toPatch(req: UpdatePreferencesRequest): PreferencesPatch {
  const seen = new Set<string>();
  const channels = req.channels.map((c, i) => {
    const name = channel(`channels[${i}].channel`, c.channel);
    if (seen.has(name)) throw invalidArgument(`channels[${i}].channel`, 'names a channel twice');
    seen.add(name);
    return { channel: name, enabled: c.enabled };
  });
  if (req.types.length > MAX_TYPE_SWITCHES) {
    throw invalidArgument('types', `must hold at most ${MAX_TYPE_SWITCHES} entries`);
  }
  const seenTypes = new Set<string>();
  const types = req.types.map((t, i) => {
    const problem = checkId(t.type);
    if (problem) throw invalidArgument(`types[${i}].type`, problem);
    const name = channel(`types[${i}].channel`, t.channel);
    const key = `${t.type}\u0000${name}`;
    if (seenTypes.has(key)) throw invalidArgument(`types[${i}]`, 'names a (type, channel) pair twice');
    seenTypes.add(key);
    return { type: t.type, channel: name, enabled: t.enabled };
  });
  if (req.quietHours && req.clearQuietHours) {
    throw invalidArgument('clear_quiet_hours', 'cannot be combined with quiet_hours');
  }
  return {
    channels,
    types,
    quietHours: req.quietHours ? quietHours(req.quietHours) : req.clearQuietHours ? null : undefined,
  };
}

export function preferenceHandlers({ db }: { db: Db }) {
  return {
    async getPreferences(req: GetPreferencesRequest, ctx: HandlerContext): Promise<GetPreferencesResponse> {
      const userId = actingUser(ctx, req.userId, 'user_id', 'read');
      return create(GetPreferencesResponseSchema, {
        preferences: preferencesToProto(await getPreferences(db, userId)),
      });
    },

    async updatePreferences(
      req: UpdatePreferencesRequest,
      ctx: HandlerContext,
    ): Promise<UpdatePreferencesResponse> {
      const userId = actingUser(ctx, req.userId, 'user_id', 'send');
      const stored = await updatePreferences(db, userId, toPatch(req));
      return create(UpdatePreferencesResponseSchema, { preferences: preferencesToProto(stored) });
    },
  };
}
