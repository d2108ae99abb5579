// The channel driver contract: what is channel-specific about a delivery, around any of its providers. The
// runner asks the claim's driver whether the delivery may go now (gate), where it goes (destination), what is
// sent (content), and what "destination gone" means (invalidate); it has no channel branch of its own.
// Drivers live beside their adapters in channels/ and are composed at the root, like the adapters.
import type { ChannelName } from '../core/channels.js';
import type { ClaimedDelivery } from '../store/deliveries.js';
import type { Content, DeliveryTask, Destination, Outcome } from './provider.js';

/** A gate's answer when the delivery must not be attempted now. */
export type GateVerdict =
  | { status: 'skipped' | 'failed' | 'cancelled' | 'expired'; reason: string }
  /** Not now: queued again for `until` (quiet hours), without using up an attempt. */
  | { status: 'queued'; reason: string; until: Date };

/** The template's parts, rendered (or the notification's own title and body when there is no template). */
export interface RenderedParts {
  title: string | null;
  /** The body; Markdown when it came from a template of a Markdown channel (see ChannelDriver.markdown). */
  body: string | null;
  /** The template's own plain-text part, rendered (e-mail templates may have one); null otherwise. */
  text: string | null;
  /** Whether the parts came from a template (else the notification's own title and body, plain text). */
  fromTemplate: boolean;
}

export interface ChannelDriver {
  readonly channel: ChannelName;
  /** Templates' bodies are Markdown on this channel: outputs are escaped for Markdown, not left as they are. */
  readonly markdown: boolean;
  /** Channel checks just before the attempt (preferences, quiet hours, suppression, the endpoint); null: go on. */
  gate(claim: ClaimedDelivery, now: Date): GateVerdict | null;
  /** The destination the delivery was planned for, or why there is none usable (the delivery is skipped). */
  destination(claim: ClaimedDelivery): Destination | { unusable: string };
  content(claim: ClaimedDelivery, parts: RenderedParts): Content;
  /** The destination as the attempt log shows it: masked (core/destinations.ts). */
  describe(destination: Destination): string;
  /** After every attempt a provider answered (e.g. a webhook endpoint's failure clock), naming the provider. */
  attempted?(claim: ClaimedDelivery, outcome: Outcome, provider: string, task: DeliveryTask): Promise<void>;
  /** SMS: the segments the content takes, stored on the delivery once sent (what the provider bills). */
  segments?(content: Content): number | null;
  /** The provider said the destination is gone: write the one record that says so. */
  invalidate(
    claim: ClaimedDelivery,
    destination: Destination,
    outcome: Extract<Outcome, { kind: 'invalid_destination' }>,
  ): Promise<void>;
}

export type ChannelDrivers = Partial<Record<ChannelName, ChannelDriver>>;
