// Delivery planning: which deliveries a notification gets. A Send that names channels gets exactly those,
// at once; otherwise the type's routing rule decides (ordered steps, each with a delay and an optional
// condition that cancels it), and without a rule the default channels. Webhook deliveries fan out to every
// enabled endpoint that subscribes to the type.
//
// What each delivery needs of the recipient (an address, a push token) is checked inside the Send statement
// itself, against the recipient as of that commit, and so are opt-outs: a delivery is queued when its
// requirement is met and the recipient has not turned the channel off (critical notifications ignore
// opt-outs), and skipped with a reason otherwise. A channel that has no provider is skipped `not_configured`
// at once: no delivery is ever queued where nothing would take it. Push fans out inside the statement too,
// one delivery per active token of the recipient. Quiet hours are applied by the dispatcher just before
// each attempt, because they depend on when that attempt happens.
import { type ChannelName, defaultChannels } from './channels.js';

/** What the recipient can be reached on; 'unavailable': nothing can be, the channel has no provider. */
export type Requirement = 'email' | 'phone' | 'pushTokens' | 'endpoint' | 'unavailable';

export type EscalationCondition = 'read' | 'seen';

export interface RoutingStepView {
  channels: readonly ChannelName[];
  delaySeconds: number;
  cancelUnless: EscalationCondition | null;
}

export interface RoutingRuleView {
  steps: readonly RoutingStepView[];
  critical: boolean;
}

export interface EndpointView {
  id: string;
  eventTypes: readonly string[];
}

export interface DeliveryPlan {
  channel: ChannelName;
  step: number;
  delaySeconds: number;
  cancelUnless: EscalationCondition | null;
  /** The webhook endpoint, for webhook deliveries that have one. */
  endpointId: string | null;
  /** What the channel needs, or null when it needs nothing. */
  requires: Requirement | null;
  /** The delivery's reason when the requirement is not met. */
  skipReason: string | null;
}

export interface PlanInput {
  requested: readonly ChannelName[];
  type: string;
  rule: RoutingRuleView | null;
  /** Enabled webhook endpoints. */
  endpoints: readonly EndpointView[];
  /** Channels that have at least one provider (in-app needs none). */
  configured: ReadonlySet<ChannelName>;
}

const requirement: Record<ChannelName, Exclude<Requirement, 'unavailable'> | null> = {
  in_app: null,
  webhook: 'endpoint',
  email: 'email',
  sms: 'phone',
  push: 'pushTokens',
};

const missingReason: Record<Exclude<Requirement, 'unavailable'>, string> = {
  email: 'no_address: recipient has no e-mail address',
  phone: 'no_address: recipient has no phone number',
  pushTokens: 'no_address: recipient has no active push token',
  endpoint: 'no_address: no enabled webhook endpoint subscribes to this type',
};

/** Whether an endpoint's filter takes this event: exact names and prefix patterns ('order.*'). */
export function endpointSubscribes(eventTypes: readonly string[], event: string): boolean {
  return eventTypes.some((pattern) =>
    pattern.endsWith('.*') ? event.startsWith(pattern.slice(0, -1)) : pattern === event,
  );
}

/** Herald's own status events go only to endpoints that name them; notification types also to catch-alls. */
export function endpointTakesType(eventTypes: readonly string[], type: string): boolean {
  return eventTypes.length === 0 || endpointSubscribes(eventTypes, type);
}

export function planDeliveries(input: PlanInput): DeliveryPlan[] {
  const steps: readonly RoutingStepView[] =
    input.requested.length > 0
      ? [{ channels: input.requested, delaySeconds: 0, cancelUnless: null }]
      : (input.rule?.steps ?? [{ channels: defaultChannels, delaySeconds: 0, cancelUnless: null }]);
  return steps.flatMap((s, step) =>
    s.channels.flatMap((channel): DeliveryPlan[] => {
      const base = { channel, step, delaySeconds: s.delaySeconds, cancelUnless: s.cancelUnless };
      if (channel !== 'in_app' && !input.configured.has(channel)) {
        const skipReason = `not_configured: no provider is configured for ${channel}`;
        return [{ ...base, endpointId: null, requires: 'unavailable', skipReason }];
      }
      if (channel !== 'webhook') {
        const requires = requirement[channel];
        return [
          { ...base, endpointId: null, requires, skipReason: requires ? missingReason[requires] : null },
        ];
      }
      const endpoints = input.endpoints.filter((e) => endpointTakesType(e.eventTypes, input.type));
      if (endpoints.length === 0) {
        const skipReason = `no_address: no enabled webhook endpoint subscribes to ${input.type}`;
        return [{ ...base, endpointId: null, requires: 'endpoint', skipReason }];
      }
      return endpoints.map((e) => ({ ...base, endpointId: e.id, requires: null, skipReason: null }));
    }),
  );
}
