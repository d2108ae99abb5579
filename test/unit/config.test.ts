import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('defaults to the embedded engine on port 8080', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      databaseUrl: undefined,
      dataDir: './.herald/data',
      migrateOnStart: true,
      bootstrapAdminKey: true,
    });
  });

  it('gives the push lane four times the dispatch concurrency unless a channel sets its own', () => {
    expect(loadConfig({}).delivery).toMatchObject({ concurrency: 32, channelConcurrency: { push: 128 } });
    expect(
      loadConfig({ HERALD_DISPATCH_CONCURRENCY: '8', HERALD_DISPATCH_CONCURRENCY_EMAIL: '3' }).delivery,
    ).toMatchObject({ concurrency: 8, channelConcurrency: { push: 32, email: 3 } });
    expect(loadConfig({ HERALD_DISPATCH_CONCURRENCY_PUSH: '40' }).delivery.channelConcurrency.push).toBe(40);
    expect(() => loadConfig({ HERALD_DISPATCH_CONCURRENCY_SMS: '0' })).toThrow(
      /HERALD_DISPATCH_CONCURRENCY_SMS must be an integer from 1 to 10000/,
    );
  });

  it('reads every problem at once and names each setting', () => {
    try {
      loadConfig({
        HERALD_PORT: '99999',
        DATABASE_URL: 'mysql://x',
        HERALD_MIGRATE_ON_START: 'maybe',
        HERALD_JWT_SECRET: 'short',
        HERALD_LOG_LEVEL: 'loud',
      });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems.join('\n');
      for (const name of [
        'HERALD_PORT',
        'DATABASE_URL',
        'HERALD_MIGRATE_ON_START',
        'HERALD_JWT_SECRET',
        'HERALD_LOG_LEVEL',
      ]) {
        expect(problems).toContain(name);
      }
    }
  });

  it('takes a plain unsubscribe mailbox, never one that would alter the mailto: URI', () => {
    expect(
      loadConfig({ HERALD_UNSUBSCRIBE_MAILTO: 'unsubscribe+list@mail.example.com' }).unsubscribeMailto,
    ).toBe('unsubscribe+list@mail.example.com');
    expect(loadConfig({}).unsubscribeMailto).toBeNull();
    for (const bad of [
      'a?cc=x@example.com',
      'a#b@example.com',
      'a%40@example.com',
      'a&b@example.com',
      'nobody',
    ]) {
      expect(() => loadConfig({ HERALD_UNSUBSCRIBE_MAILTO: bad })).toThrow(
        /HERALD_UNSUBSCRIBE_MAILTO must be a plain e-mail address/,
      );
    }
  });

  it('refuses two JWT key sources at once', () => {
    expect(() =>
      loadConfig({ HERALD_JWT_SECRET: 'x'.repeat(32), HERALD_JWT_JWKS_FILE: '/tmp/jwks.json' }),
    ).toThrow(/at most one of HERALD_JWT_SECRET/);
  });

  it('reads delivery settings: retry policies, rate limits, allowed networks', () => {
    const { delivery } = loadConfig({
      HERALD_RETRY_WEBHOOK: 'attempts=3, base_ms=100',
      HERALD_RATE_LIMITS: 'webhook=50:100,ses=14.5:14',
      HERALD_WEBHOOK_ALLOW_NETWORKS: '10.1.0.0/16, ::1',
    });
    expect(delivery.retry.webhook).toMatchObject({
      maxAttempts: 3,
      baseDelayMs: 100,
      maxDelayMs: 36_000_000,
    });
    expect(delivery.retry.email.maxAttempts).toBe(8);
    expect(delivery.rateLimits).toEqual({
      webhook: { perSecond: 50, burst: 100 },
      ses: { perSecond: 14.5, burst: 14 },
    });
    expect(delivery.webhookAllowNetworks).toEqual(['10.1.0.0/16', '::1']);
  });

  it('names malformed delivery settings', () => {
    expect(() => loadConfig({ HERALD_RETRY_SMS: 'tries=3' })).toThrow(/HERALD_RETRY_SMS: "tries=3"/);
    expect(() => loadConfig({ HERALD_RATE_LIMITS: 'webhook=fast' })).toThrow(
      /HERALD_RATE_LIMITS: "webhook=fast"/,
    );
    expect(() => loadConfig({ HERALD_WEBHOOK_ALLOW_NETWORKS: '10.0.0.0/33' })).toThrow(
      /HERALD_WEBHOOK_ALLOW_NETWORKS: "10.0.0.0\/33"/,
    );
  });

  it('refuses a lease shorter than the longest attempt, which would let a second claim run beside the first', () => {
    expect(() => loadConfig({ HERALD_DELIVERY_LEASE_MS: '10000' })).toThrow(
      /HERALD_DELIVERY_LEASE_MS \(10000\) must be at least HERALD_WEBHOOK_TIMEOUT_MS \+ 2000 \(17000\)/,
    );
    expect(
      loadConfig({ HERALD_DELIVERY_LEASE_MS: '4000', HERALD_WEBHOOK_TIMEOUT_MS: '2000' }).delivery.leaseMs,
    ).toBe(4000);
  });

  it('traces only with an OTLP endpoint, reading it as OpenTelemetry defines it', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toEqual({
      tracesUrl: 'http://collector:4318/v1/traces',
      serviceName: 'herald',
    });
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example.com/ingest/' }).tracing?.tracesUrl,
    ).toBe('https://otel.example.com/ingest/v1/traces');
    // The signal's own endpoint is taken as it is, and wins.
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom',
        OTEL_SERVICE_NAME: 'herald-eu',
      }).tracing,
    ).toEqual({ tracesUrl: 'http://traces:9999/custom', serviceName: 'herald-eu' });
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
    );
  });
});
