// In-app notifications stored straight through the store (no server running), as Send would store them.
import { planDeliveries } from '../../src/core/planning.js';
import type { Database } from '../../src/store/database.js';
import { type NewNotification, type StoredSend, storeNotifications } from '../../src/store/index.js';

function inAppItem(userId: string, title: string): NewNotification {
  return {
    userId,
    recipient: {},
    type: 'chat.message',
    priority: 2,
    data: {},
    title,
    body: null,
    channels: ['in_app'],
    idempotencyKey: null,
    requestHash: null,
    sendAt: null,
    expiresAt: null,
  };
}

/** One `chat.message` in-app notification per title for `userId`, in one statement. */
export function storeInApp(database: Database, userId: string, titles: string[]): Promise<StoredSend[]> {
  return storeNotifications(
    database,
    null,
    titles.map((title) => inAppItem(userId, title)),
    (i) => ({
      critical: false,
      deliveries: planDeliveries({ requested: i.channels, type: i.type, rule: null, endpoints: [] }),
      wakesDispatcher: false,
    }),
  );
}
