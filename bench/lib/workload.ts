// The notifications every phase sends: the same content for Herald and for the raw baselines, spread
// round-robin over many users so that per-user row locks (recipients.last_seq) rarely make calls wait.

export const NOTIFICATION_TYPE = 'bench.ping';
export const TITLE = 'Hello';
export const BODY = 'Your order has shipped and will arrive on Thursday.';
/** Priority.NORMAL: what Herald stores when the request leaves priority unset. */
export const NORMAL_PRIORITY = 2;

export interface NotificationSpec {
  userId: string;
  type: string;
  title: string;
  body: string;
  data: { orderId: string; n: number };
}

export class Workload {
  private next = 0;

  constructor(private readonly users: number) {}

  one(): NotificationSpec {
    const n = this.next++;
    return {
      userId: `bench-user-${n % this.users}`,
      type: NOTIFICATION_TYPE,
      title: TITLE,
      body: BODY,
      data: { orderId: `o-${n}`, n },
    };
  }

  /** Consecutive notifications, so a batch of `size` <= users addresses `size` distinct users. */
  batch(size: number): NotificationSpec[] {
    return Array.from({ length: size }, () => this.one());
  }
}
