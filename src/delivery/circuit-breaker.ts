// One circuit breaker per provider (SES, Twilio, APNs, FCM, each push-service origin, each webhook host), kept
// in process. Time is passed in on every call, so nothing here owns a timer and tests never sleep.
//
// What counts as a trip is decided by the caller: 5xx, timeouts, 429s
// and credential errors trip; per-recipient permanent errors (410, UNREGISTERED, 21610, hard bounces) are
// neutral, because they say something about one token or address, not about the provider.

export interface CircuitOptions {
  /** Consecutive trip-class failures that open the circuit. */
  failureThreshold: number;
  /** How long an open circuit refuses attempts before it lets probes through. */
  openMs: number;
  /** Attempts let through at once while half-open. */
  halfOpenProbes: number;
}

export type CircuitState = 'closed' | 'open' | 'half_open';

export type CircuitAdmission = { allowed: true } | { allowed: false; retryAt: number };

export type AttemptOutcome = 'success' | 'trip' | 'neutral';

export const defaultCircuitOptions: CircuitOptions = {
  failureThreshold: 5,
  openMs: 30_000,
  halfOpenProbes: 1,
};

function resolveOptions(options: Partial<CircuitOptions>): CircuitOptions {
  const resolved = { ...defaultCircuitOptions, ...options };
  if (!Number.isInteger(resolved.failureThreshold) || resolved.failureThreshold < 1) {
    throw new RangeError('failureThreshold: must be an integer >= 1');
  }
  if (!Number.isFinite(resolved.openMs) || resolved.openMs < 0) {
    throw new RangeError('openMs: must be a finite number >= 0');
  }
  if (!Number.isInteger(resolved.halfOpenProbes) || resolved.halfOpenProbes < 1) {
    throw new RangeError('halfOpenProbes: must be an integer >= 1');
  }
  return resolved;
}

export class CircuitBreaker {
  readonly options: CircuitOptions;
  #state: CircuitState = 'closed';
  #consecutiveTrips = 0;
  #openedAt = 0;
  /** How long the current open period lasts: openMs, or what openFor() asked for. */
  #openFor = 0;
  /**
   * When each outstanding half-open probe was admitted. A probe whose outcome is never recorded (the worker
   * crashed mid-attempt) would otherwise hold its slot forever and wedge the provider; its slot lapses after
   * openMs instead.
   */
  #probes: number[] = [];

  constructor(options: Partial<CircuitOptions> = {}) {
    this.options = resolveOptions(options);
  }

  state(now: number): CircuitState {
    this.#advance(now);
    return this.#state;
  }

  /**
   * Whether an attempt may go to this provider now; when not, the earliest time it might. Half-open admits up
   * to halfOpenProbes concurrent probes; every admitted attempt must be followed by one record().
   */
  acquire(now: number): CircuitAdmission {
    this.#advance(now);
    switch (this.#state) {
      case 'closed':
        return { allowed: true };
      case 'open':
        return { allowed: false, retryAt: this.#openedAt + this.#openFor };
      case 'half_open':
        if (this.#probes.length < this.options.halfOpenProbes) {
          this.#probes.push(now);
          return { allowed: true };
        }
        // A probe may finish sooner, but without its outcome the only time known to change the answer is
        // when the oldest probe's slot lapses.
        return { allowed: false, retryAt: Math.min(...this.#probes) + this.options.openMs };
    }
  }

  /**
   * Outcome of an admitted attempt: 'success' closes it (from half-open) and resets the count; 'trip' (5xx,
   * timeout, 429, credentials) counts toward opening and re-opens from half-open; 'neutral' (per-recipient
   * permanent errors such as 410, invalid destination, payload errors) releases a probe without changing state.
   * While open, outcomes of attempts admitted before it opened change nothing: the open period runs its course.
   */
  record(result: AttemptOutcome, now: number): void {
    this.#advance(now);
    if (this.#state === 'open') return;
    if (this.#state === 'half_open') this.#probes.shift();
    switch (result) {
      case 'success':
        this.#close();
        return;
      case 'trip':
        this.#consecutiveTrips += 1;
        if (this.#state === 'half_open' || this.#consecutiveTrips >= this.options.failureThreshold) {
          this.#open(now);
        }
        return;
      case 'neutral':
        return;
    }
  }

  /**
   * Opens the circuit at once for `ms` (a provider that said when it will take work again, such as a daily
   * quota), whatever its state; a longer open period already running is kept.
   */
  openFor(ms: number, now: number): void {
    this.#advance(now);
    if (this.#state === 'open' && this.#openedAt + this.#openFor >= now + ms) return;
    this.#open(now, ms);
  }

  #advance(now: number): void {
    if (this.#state === 'open' && now >= this.#openedAt + this.#openFor) {
      this.#state = 'half_open';
      this.#probes = [];
    } else if (this.#state === 'half_open') {
      this.#probes = this.#probes.filter((admittedAt) => now < admittedAt + this.options.openMs);
    }
  }

  #open(now: number, ms = this.options.openMs): void {
    this.#state = 'open';
    this.#openedAt = now;
    this.#openFor = ms;
    this.#probes = [];
  }

  #close(): void {
    this.#state = 'closed';
    this.#consecutiveTrips = 0;
    this.#probes = [];
  }
}

/** The breakers of all providers, created on first use with the same options. */
export class CircuitBreakers {
  readonly #options: Partial<CircuitOptions>;
  readonly #byProvider = new Map<string, CircuitBreaker>();

  constructor(options: Partial<CircuitOptions> = {}) {
    // Validate once up front rather than on the first get() deep inside a delivery.
    resolveOptions(options);
    this.#options = { ...options };
  }

  get(provider: string): CircuitBreaker {
    let breaker = this.#byProvider.get(provider);
    if (!breaker) {
      breaker = new CircuitBreaker(this.#options);
      this.#byProvider.set(provider, breaker);
    }
    return breaker;
  }

  states(now: number): Record<string, CircuitState> {
    const states: Record<string, CircuitState> = {};
    for (const [provider, breaker] of this.#byProvider) states[provider] = breaker.state(now);
    return states;
  }
}
