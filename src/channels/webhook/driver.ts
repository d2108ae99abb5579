// Webhooks around any provider: one delivery per endpoint that takes the type (planned at Send), plus
// Herald's status events. An endpoint must still exist and be enabled when the attempt starts; every attempt
// runs the endpoint's failure clock (a run of failures longer than HERALD_WEBHOOK_DISABLE_AFTER_HOURS
// disables it); an endpoint that answers 410 Gone is disabled at once. Preferences and quiet hours do not
// apply: webhooks go to systems, not people.
import type { ChannelDriver, RenderedParts } from '../../delivery/channel.js';
import type { Content, Destination } from '../../delivery/provider.js';
import {
  type ClaimedDelivery,
  disableEndpoint,
  recordEndpointResult,
  type SqlRunner,
} from '../../store/index.js';

export interface WebhookDriverDeps {
  sql: SqlRunner;
  /** An endpoint whose every attempt failed for this long is disabled. */
  disableAfterMs: number;
  /** Reloads the cached endpoint list after one was disabled. */
  refreshConfig: () => Promise<void>;
}

export function createWebhookDriver(deps: WebhookDriverDeps): ChannelDriver {
  return {
    channel: 'webhook',
    markdown: false,
    gate(claim) {
      if (!claim.endpoint_url)
        return { status: 'failed', reason: 'endpoint: the webhook endpoint was deleted' };
      if (!claim.endpoint_enabled) {
        return {
          status: 'failed',
          reason: `endpoint: disabled (${claim.endpoint_disabled_reason ?? 'by an admin'})`,
        };
      }
      return null;
    },
    destination: webhookDestination,
    describe: (destination) =>
      destination.channel === 'webhook' ? `endpoint ${destination.endpointId}` : '',
    content: webhookContent,
    async attempted(claim, outcome) {
      // The failure clock: started by a failure, cleared by a success (no write while healthy).
      const succeeded = outcome.kind === 'sent';
      if (!claim.endpoint_id || outcome.kind === 'invalid_destination') return;
      if (succeeded && !claim.endpoint_failing) return;
      await recordEndpointResult(deps.sql, claim.endpoint_id, succeeded, deps.disableAfterMs);
    },
    async invalidate(_claim, destination, { reason }) {
      if (destination.channel !== 'webhook') return;
      await disableEndpoint(deps.sql, destination.endpointId, reason);
      await deps.refreshConfig();
    },
  };
}

function webhookDestination(claim: ClaimedDelivery): Destination | { unusable: string } {
  if (!claim.endpoint_id || !claim.endpoint_url || !claim.endpoint_secret) {
    return { unusable: 'no_address: the delivery has no webhook endpoint' };
  }
  return {
    channel: 'webhook',
    endpointId: claim.endpoint_id,
    url: claim.endpoint_url,
    // While a rotation overlaps, the previous secret signs too.
    secrets: [
      claim.endpoint_secret,
      ...(claim.endpoint_previous_secret ? [claim.endpoint_previous_secret] : []),
    ],
  };
}

/** A notification's fields (with its rendered title and body), or a status event's own data. */
export function webhookContent(claim: ClaimedDelivery, parts: RenderedParts): Content {
  if (claim.event !== 'notification') {
    return { channel: 'webhook', type: claim.event, data: claim.payload ?? {} };
  }
  return {
    channel: 'webhook',
    type: claim.type,
    data: {
      notification_id: claim.notification_id,
      user_id: claim.user_id,
      seq: Number(claim.seq),
      type: claim.type,
      priority: claim.priority,
      title: parts.title,
      body: parts.body,
      data: claim.data,
      created_at: new Date(claim.notification_created_at).toISOString(),
      send_at: new Date(claim.send_at).toISOString(),
    },
  };
}
