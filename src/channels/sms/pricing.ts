// What an SMS is estimated to cost: a price per segment for a provider, optionally per destination prefix
// (`+1`, `+49`; the longest matching prefix wins), in one currency. Providers bill per segment, so the driver
// counts segments × price into herald_sms_cost_total; real invoices remain the provider's.

export interface SmsPricing {
  currency: string;
  /** The price of one segment to a number no prefix matches; null: unknown. */
  perSegment: number | null;
  /** Longest prefix first. */
  byPrefix: readonly { prefix: string; perSegment: number }[];
}

/** From the providers file's `price` setting ({"currency", "per_segment", "by_prefix": {"+1": 0.0083}}). */
export function smsPricing(setting: {
  currency: string;
  per_segment?: number | undefined;
  by_prefix?: Record<string, number> | undefined;
}): SmsPricing {
  return {
    currency: setting.currency,
    perSegment: setting.per_segment ?? null,
    byPrefix: Object.entries(setting.by_prefix ?? {})
      .map(([prefix, perSegment]) => ({ prefix, perSegment }))
      .sort((a, b) => b.prefix.length - a.prefix.length),
  };
}

/** The estimated cost of `segments` to `number`, or undefined when no price applies. */
export function estimatedCost(
  pricing: SmsPricing | undefined,
  number: string,
  segments: number,
): { amount: number; currency: string } | undefined {
  if (!pricing) return undefined;
  const price = pricing.byPrefix.find((p) => number.startsWith(p.prefix))?.perSegment ?? pricing.perSegment;
  return price === null ? undefined : { amount: price * segments, currency: pricing.currency };
}
