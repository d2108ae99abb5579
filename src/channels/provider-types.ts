// The provider types a providers file may name as `type`: which channels each serves and how its `settings`
// are checked. Adding a provider type is adding an entry here.
import net from 'node:net';
import { z } from 'zod';
import type { ProviderTypes } from './providers-file.js';

/** An address (a network of its own) or a CIDR whose prefix length fits the address family. */
export function isAddressOrCidr(text: string): boolean {
  const [address, prefix, ...rest] = text.split('/');
  const family = net.isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 6 ? 128 : 32);
}

const webhookSettings = z.strictObject({
  // Networks this provider's endpoints may resolve to although they are not global addresses.
  allow_networks: z.array(z.string().refine(isAddressOrCidr, 'must be an address or CIDR')).optional(),
});

// The outbox keeps messages in Herald's own table instead of sending them: there is nothing to configure.
const outboxSettings = z.strictObject({});

export const providerTypes: ProviderTypes = {
  webhook: { channels: ['webhook'], settings: webhookSettings },
  outbox: { channels: ['push', 'email', 'sms', 'webhook'], settings: outboxSettings },
};
