// An e-mail sent through Herald with the outbox as its provider (no providers file), waited for until its
// delivery is final, and the message the outbox captured.
import { Channel, type Delivery, DeliveryStatus, Priority } from '../../clients/node/index.js';
import type { TestServer } from './server.js';
import { until } from './until.js';

export interface CapturedEmail {
  headers: Record<string, string>;
  subject: string;
  html: string;
  text: string;
}

const inFlight = new Set([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]);

/** Sends a one-channel e-mail to `<userId>@example.com`; `message` is null unless the delivery was sent. */
export async function emailThroughOutbox(
  server: TestServer,
  userId: string,
  type: string,
  priority = Priority.NORMAL,
): Promise<{ delivery: Delivery; message: CapturedEmail | null }> {
  const sent = await server.admin().send({
    userId,
    type,
    title: 'Hello',
    body: 'News',
    priority,
    recipient: { email: `${userId}@example.com` },
    channels: [Channel.EMAIL],
  });
  const delivery = await until('the e-mail final', 5_000, async () => {
    const { notification } = await server.admin().getNotification({ notificationId: sent.notificationId });
    const d = notification!.deliveries[0]!;
    return inFlight.has(d.status) ? undefined : d;
  });
  if (delivery.status !== DeliveryStatus.SENT) return { delivery, message: null };
  const { message } = await server.adminService().getOutboxMessage({
    id: delivery.providerMessageId.replace(/^outbox-/, ''),
  });
  return { delivery, message: message!.message as unknown as CapturedEmail };
}
