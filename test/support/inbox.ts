// In-app notifications stored straight through the store (no server running), as Send would store them.
import type { Database } from '../../src/store/database.js';
import { type StoredSend, storeNotifications } from '../../src/store/index.js';
import { newNotification, plainPlanner } from './notifications.js';

/** One `chat.message` in-app notification per title for `userId`, in one statement. */
export function storeInApp(database: Database, userId: string, titles: string[]): Promise<StoredSend[]> {
  return storeNotifications(
    database,
    null,
    titles.map((title) => newNotification(userId, { type: 'chat.message', title })),
    plainPlanner,
  );
}
