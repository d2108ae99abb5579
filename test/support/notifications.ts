// Validated Sends built straight for the store (no server running), as the API would hand them over, and the
// plain planner the store tests use: the requested channels, no routing rules, no webhook endpoints.
import { channelNames } from '../../src/core/channels.js';
import { planDeliveries } from '../../src/core/planning.js';
import type { NewNotification, Planner } from '../../src/store/index.js';

/** A NORMAL-priority notification for `userId`, accepted now, with whatever `fields` change. */
export function newNotification(userId: string, fields: Partial<NewNotification> = {}): NewNotification {
  return {
    userId,
    recipient: {},
    type: 'account.notice',
    priority: 2,
    data: {},
    title: 'Hi',
    body: null,
    channels: ['in_app'],
    idempotencyKey: null,
    requestHash: null,
    sendAt: null,
    expiresAt: null,
    push: null,
    acceptedAt: new Date(),
    ...fields,
  };
}

export const plainPlanner: Planner = (item) => ({
  critical: false,
  deliveries: planDeliveries({
    requested: item.channels,
    type: item.type,
    rule: null,
    endpoints: [],
    configured: new Set(channelNames),
  }),
  wakesDispatcher: false,
});
