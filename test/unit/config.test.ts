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
      protocol: 'http/protobuf',
      serviceName: 'herald',
      sampler: { name: 'parentbased_always_on' },
      resourceAttributes: {},
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
    ).toMatchObject({ tracesUrl: 'http://traces:9999/custom', serviceName: 'herald-eu' });
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
    );
  });

  const OTLP = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };

  it('does not trace with OTEL_SDK_DISABLED=true, whatever else is set', () => {
    expect(loadConfig({ ...OTLP, OTEL_SDK_DISABLED: 'true' }).tracing).toBeUndefined();
    expect(loadConfig({ ...OTLP, OTEL_SDK_DISABLED: 'TRUE' }).tracing).toBeUndefined();
    // Disabled, the other OpenTelemetry settings are not read, so not refused either.
    expect(
      loadConfig({ ...OTLP, OTEL_SDK_DISABLED: 'true', OTEL_TRACES_SAMPLER: 'nonsense' }).tracing,
    ).toBeUndefined();
    expect(loadConfig({ ...OTLP, OTEL_SDK_DISABLED: 'false' }).tracing).toBeDefined();
    expect(loadConfig({ ...OTLP, OTEL_SDK_DISABLED: '' }).tracing).toBeDefined();
    expect(() => loadConfig({ ...OTLP, OTEL_SDK_DISABLED: 'yes' })).toThrow(
      /OTEL_SDK_DISABLED must be true or false \(got "yes"\)/,
    );
    // Without an endpoint nothing OpenTelemetry is read.
    expect(loadConfig({ OTEL_SDK_DISABLED: 'yes', OTEL_TRACES_SAMPLER: 'nonsense' }).tracing).toBeUndefined();
  });

  it('reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG as OpenTelemetry defines them', () => {
    const sampler = (env: Record<string, string>) => loadConfig({ ...OTLP, ...env }).tracing?.sampler;
    expect(sampler({})).toEqual({ name: 'parentbased_always_on' });
    for (const name of ['always_on', 'always_off', 'parentbased_always_on', 'parentbased_always_off']) {
      // The argument is only the ratio samplers'; the others ignore it.
      expect(sampler({ OTEL_TRACES_SAMPLER: name, OTEL_TRACES_SAMPLER_ARG: 'ignored' })).toEqual({ name });
    }
    expect(sampler({ OTEL_TRACES_SAMPLER: 'ALWAYS_OFF' })).toEqual({ name: 'always_off' });
    expect(sampler({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })).toEqual({
      name: 'traceidratio',
      ratio: 0.25,
    });
    expect(
      sampler({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }),
    ).toEqual({
      name: 'parentbased_traceidratio',
      ratio: 0,
    });
    // Unset, the ratio is 1.
    expect(sampler({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio' })).toEqual({
      name: 'parentbased_traceidratio',
      ratio: 1,
    });
  });

  it('refuses a sampler it does not have and a ratio that is not a probability, naming the variable', () => {
    for (const name of ['jaeger_remote', 'parentbased_jaeger_remote', 'xray', 'on']) {
      expect(() => loadConfig({ ...OTLP, OTEL_TRACES_SAMPLER: name })).toThrow(
        new RegExp(
          `OTEL_TRACES_SAMPLER must be one of always_on, .*parentbased_traceidratio \\(got "${name}"\\)`,
        ),
      );
    }
    for (const arg of ['1.5', '-0.1', 'half', '0x1', 'NaN', 'Infinity']) {
      expect(() =>
        loadConfig({ ...OTLP, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: arg }),
      ).toThrow(/OTEL_TRACES_SAMPLER_ARG must be a probability from 0 to 1 for traceidratio/);
    }
  });

  it('exports OTLP/HTTP with protobuf (the default) or JSON, the traces variable winning', () => {
    const protocol = (env: Record<string, string>) => loadConfig({ ...OTLP, ...env }).tracing?.protocol;
    // Unset (or empty), the specification's default.
    expect(protocol({})).toBe('http/protobuf');
    expect(protocol({ OTEL_EXPORTER_OTLP_PROTOCOL: '', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ' ' })).toBe(
      'http/protobuf',
    );
    expect(protocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' })).toBe('http/protobuf');
    expect(protocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })).toBe('http/json');
    expect(protocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' })).toBe('http/json');
    expect(protocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'HTTP/PROTOBUF' })).toBe('http/protobuf');
    // The signal's own variable wins, both ways.
    expect(
      protocol({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      }),
    ).toBe('http/json');
    expect(
      protocol({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      }),
    ).toBe('http/protobuf');
    // An empty traces variable is unset: the general one applies.
    expect(
      protocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: '' }),
    ).toBe('http/json');
  });

  it('refuses grpc and any other protocol, pointing at the collector’s OTLP/HTTP port', () => {
    expect(() => loadConfig({ ...OTLP, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL is "grpc" but Herald exports traces over OTLP\/HTTP only: set it to http\/protobuf .*or http\/json.*port \(4318\)/,
    );
    expect(() => loadConfig({ ...OTLP, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/xml' })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL is "http\/xml" but Herald exports traces over OTLP\/HTTP only/,
    );
    // The signal's own variable wins, so a bad one is refused under its name, and a good one hides a bad one.
    expect(() =>
      loadConfig({
        ...OTLP,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
      }),
    ).toThrow(/OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is "grpc"/);
    expect(
      loadConfig({
        ...OTLP,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      }).tracing?.protocol,
    ).toBe('http/protobuf');
    // No endpoint, no tracing: the protocol is not read.
    expect(loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }).tracing).toBeUndefined();
  });

  it('reads OTEL_RESOURCE_ATTRIBUTES as the specification does, OTEL_SERVICE_NAME winning', () => {
    const tracing = (env: Record<string, string>) => loadConfig({ ...OTLP, ...env }).tracing;
    expect(
      tracing({
        OTEL_RESOURCE_ATTRIBUTES:
          ' deployment.environment.name = prod ,k8s.pod.name=herald-7f9c,,team=a%2Cb%3Dc%25 , service.name=notif',
      }),
    ).toMatchObject({
      serviceName: 'notif',
      resourceAttributes: {
        'deployment.environment.name': 'prod',
        'k8s.pod.name': 'herald-7f9c',
        team: 'a,b=c%',
        'service.name': 'notif',
      },
    });
    expect(
      tracing({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=notif', OTEL_SERVICE_NAME: 'herald-eu' })
        ?.serviceName,
    ).toBe('herald-eu');
    for (const bad of ['novalue', 'a=b=c', '=value', 'bad=%E0%A4%A', `long=${'x'.repeat(256)}`]) {
      expect(() => tracing({ OTEL_RESOURCE_ATTRIBUTES: `ok=1,${bad}` }), bad).toThrow(
        /OTEL_RESOURCE_ATTRIBUTES must be comma-separated key=value pairs/,
      );
    }
  });
});
