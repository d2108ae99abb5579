// HERALD_WORKERS: several server processes on one port (node:cluster), on PostgreSQL only.
import { afterAll, describe, expect, it } from 'vitest';
import { createHeraldClient } from '../../clients/node/index.js';
import { createPostgresDatabase } from '../support/engines.js';
import { killLeftovers, runCli, ServeProcess, tempDir, until } from './lifecycle-process.js';

afterAll(() => killLeftovers());

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('cluster mode', () => {
  it('refuses HERALD_WORKERS above 1 on the embedded database, naming the setting', async () => {
    const dir = tempDir('herald-cluster-');
    try {
      const result = await runCli(['serve'], { HERALD_WORKERS: '2', HERALD_DATA_DIR: `${dir.path}/data` });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('HERALD_WORKERS above 1 needs DATABASE_URL');
    } finally {
      dir.remove();
    }
  });

  describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('on PostgreSQL', () => {
    it('serves one port from every worker, replaces a dead one, and stops them all on SIGTERM', async () => {
      const db = await createPostgresDatabase(process.env.TEST_DATABASE_URL!);
      const server = await ServeProcess.start({ DATABASE_URL: db.url, HERALD_WORKERS: '2' });
      try {
        const listening = () => server.logs().filter((line) => line.msg === 'herald listening');
        const workers = await until('two workers listening', 30_000, () => {
          const lines = listening();
          return lines.length >= 2 ? lines.map((l) => Number(l.pid)) : undefined;
        });
        expect(new Set(workers).size).toBe(2);
        expect(new Set(listening().map((l) => l.port))).toEqual(new Set([server.port]));
        // The native gRPC port is shared the same way.
        expect(new Set(listening().map((l) => `http://127.0.0.1:${l.grpcPort}`))).toEqual(
          new Set([server.grpcUrl]),
        );
        expect(workers).not.toContain(server.pid);
        expect(server.bootstrapKey).toBeDefined();

        // Fresh HTTP/1.1 connections are spread over the workers; every Send lands in the one database.
        const send = (i: number) =>
          createHeraldClient({ baseUrl: server.url, apiKey: server.bootstrapKey!, protocol: 'connect' }).send(
            {
              userId: 'cluster-user',
              type: 'cluster.test',
              title: `n${i}`,
            },
          );
        const seqs = (await Promise.all(Array.from({ length: 12 }, (_, i) => send(i)))).map((r) =>
          Number(r.seq),
        );
        expect(seqs.sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
        const native = createHeraldClient({ baseUrl: server.grpcUrl!, apiKey: server.bootstrapKey! });
        expect(
          Number((await native.send({ userId: 'cluster-user', type: 'cluster.test', title: 'n' })).seq),
        ).toBe(13);

        process.kill(workers[0]!, 'SIGKILL');
        const replacement = await until('a replacement worker', 30_000, () => {
          const pids = listening().map((l) => Number(l.pid));
          return pids.length >= 3 ? pids[2] : undefined;
        });
        expect(server.logs().some((l) => l.msg === 'worker died; starting a replacement')).toBe(true);
        expect(replacement).not.toBe(workers[0]);
        expect(Number((await send(99)).seq)).toBe(14);

        const exit = await server.stop('SIGTERM', 20_000);
        expect(exit.code).toBe(0);
        for (const pid of [workers[1]!, replacement!]) expect(isRunning(pid)).toBe(false);
        expect(server.logs().filter((l) => l.msg === 'stopped')).toHaveLength(2);
      } finally {
        server.kill();
        await db.drop();
      }
    });
  });
});
