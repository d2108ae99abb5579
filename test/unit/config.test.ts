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

  it('refuses two JWT key sources at once', () => {
    expect(() =>
      loadConfig({ HERALD_JWT_SECRET: 'x'.repeat(32), HERALD_JWT_JWKS_FILE: '/tmp/jwks.json' }),
    ).toThrow(/at most one of HERALD_JWT_SECRET/);
  });
});
