// The adapter of a provider that takes every destination of its channel (e-mail, SMS): it accepts a task
// whose destination and content are of that channel, and its circuit and rate limit are the provider's.
import type { ChannelName } from '../core/channels.js';
import type { ProviderAdapter } from '../delivery/provider.js';

export function channelAdapter(
  channel: Exclude<ChannelName, 'in_app'>,
  parts: Pick<ProviderAdapter, 'name' | 'timeoutMs' | 'send' | 'close'>,
): ProviderAdapter {
  return {
    ...parts,
    channel,
    accepts: (task) => task.destination.channel === channel && task.content.channel === channel,
    circuitKey: () => parts.name,
  };
}
