// The webhook receiver emulator itself: other webhook tests trust what it scripts and records.
import { Agent, request as httpRequest } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateWebhookSecret, signWebhook } from '../../src/channels/webhook/signature.js';
import { startWebhookReceiver, type WebhookReceiver } from '../emulators/webhook-receiver.js';

let receiver: WebhookReceiver;
beforeEach(async () => {
  receiver = await startWebhookReceiver();
});
afterEach(async () => {
  await receiver.close();
});

function post(path: string, webhookId: string, body = '{}', extra: Record<string, string> = {}) {
  return fetch(`${receiver.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': webhookId, ...extra },
    body,
    redirect: 'manual',
  });
}

describe('webhook receiver emulator', () => {
  it('listens on loopback and records what arrived', async () => {
    expect(receiver.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const before = Date.now();
    await post('/hooks/a?tenant=7', 'msg_1', '{"n":1}');
    expect(receiver.received).toEqual([
      {
        path: '/hooks/a?tenant=7',
        method: 'POST',
        headers: expect.objectContaining({ 'webhook-id': 'msg_1', 'content-type': 'application/json' }),
        body: '{"n":1}',
        receivedAt: expect.any(Number),
      },
    ]);
    expect(receiver.received[0]?.receivedAt).toBeGreaterThanOrEqual(before);
  });

  it('answers with scripted replies in order, then the default 200 ok', async () => {
    receiver.script('/hook', [
      { status: 503, headers: { 'retry-after': '7' } },
      { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } },
      { status: 410, body: 'gone' },
    ]);
    const first = await post('/hook', 'msg_1');
    expect([first.status, first.headers.get('retry-after')]).toEqual([503, '7']);
    const second = await post('/hook', 'msg_1');
    expect([second.status, second.headers.get('location')]).toEqual([
      302,
      'http://169.254.169.254/latest/meta-data/',
    ]);
    const third = await post('/hook', 'msg_1');
    expect([third.status, await third.text()]).toEqual([410, 'gone']);
    const fourth = await post('/hook', 'msg_1');
    expect([fourth.status, await fourth.text()]).toEqual([200, 'ok']);
  });

  it('matches a script by path whatever the query string, and leaves other paths on the default', async () => {
    receiver.script('/hook', [{ status: 500 }]);
    expect((await post('/other', 'msg_1')).status).toBe(200);
    expect((await post('/hook?sig=1', 'msg_1')).status).toBe(500);
  });

  it('uses a changed default once scripts run out', async () => {
    receiver.setDefault({ status: 429, headers: { 'retry-after': '2' } });
    const reply = await post('/hook', 'msg_1');
    expect([reply.status, reply.headers.get('retry-after')]).toEqual([429, '2']);
  });

  it('resets the connection without answering', async () => {
    receiver.script('/hook', [{ reset: true }]);
    const failure = await post('/hook', 'msg_1').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toMatchObject({ cause: { code: 'ECONNRESET' } });
    expect(receiver.countsByWebhookId().get('msg_1')).toBe(1);
    expect((await post('/hook', 'msg_1')).status).toBe(200);
  });

  it('holds a hung request until the client gives up, and close() still ends it', async () => {
    receiver.script('/hook', [{ hang: true }, { hang: true }]);
    await expect(
      fetch(`${receiver.url}/hook`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(200) }),
    ).rejects.toMatchObject({ name: 'TimeoutError' });
    const stillHanging = fetch(`${receiver.url}/hook`, { method: 'POST', body: '{}' }).catch(
      (err: unknown) => err,
    );
    await receiver.waitFor((r) => r.length === 2, 2_000);
    const started = Date.now();
    await receiver.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await stillHanging).toBeInstanceOf(Error);
    receiver = await startWebhookReceiver(); // afterEach closes this one
  });

  it('delays a scripted reply', async () => {
    receiver.script('/hook', [{ status: 204, delayMs: 150 }]);
    const started = Date.now();
    expect((await post('/hook', 'msg_1')).status).toBe(204);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('counts arrivals per webhook-id', async () => {
    await post('/hook', 'msg_a');
    await post('/hook', 'msg_b');
    await post('/hook', 'msg_a');
    expect(receiver.countsByWebhookId()).toEqual(
      new Map([
        ['msg_a', 2],
        ['msg_b', 1],
      ]),
    );
  });

  it('reports 1 for sequential requests and 2 for overlapping ones with the same webhook-id', async () => {
    receiver.setDefault({ status: 200, delayMs: 100 });
    await post('/hook', 'msg_a');
    await post('/hook', 'msg_a');
    await Promise.all([post('/hook', 'msg_b'), post('/hook', 'msg_c')]);
    expect(receiver.maxConcurrentPerWebhookId()).toBe(1);
    await Promise.all([post('/hook', 'msg_d'), post('/hook', 'msg_d')]);
    expect(receiver.maxConcurrentPerWebhookId()).toBe(2);
  });

  it('keeps the connection alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const reused: boolean[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        await new Promise<void>((resolve, reject) => {
          const req = httpRequest(`${receiver.url}/hook`, { method: 'POST', agent }, (res) => {
            res.resume();
            res.on('end', resolve);
          });
          req.on('error', reject);
          req.end('{}');
          reused.push(req.reusedSocket);
        });
      }
    } finally {
      agent.destroy();
    }
    expect(reused).toEqual([false, true]);
  });

  it('names the requests whose signature the reference verifier rejects', async () => {
    const secret = generateWebhookSecret();
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signed = (webhookId: string, body: string, key = secret) => ({
      'webhook-timestamp': timestamp,
      'webhook-signature': signWebhook([key], webhookId, Number(timestamp), body),
    });
    await post('/hook', 'msg_good', '{"a":1}', signed('msg_good', '{"a":1}'));
    await post(
      '/hook',
      'msg_other_key',
      '{"a":1}',
      signed('msg_other_key', '{"a":1}', generateWebhookSecret()),
    );
    await post('/hook', 'msg_tampered', '{"a":2}', signed('msg_tampered', '{"a":1}'));
    await post('/hook', 'msg_unsigned', '{"a":1}');
    expect(receiver.unverified(secret)).toEqual(['msg_other_key', 'msg_tampered', 'msg_unsigned']);
  });

  it('resolves waitFor once the condition holds and rejects after the timeout', async () => {
    const waiting = receiver.waitFor((r) => r.some((w) => w.headers['webhook-id'] === 'msg_late'), 2_000);
    await post('/hook', 'msg_early');
    setTimeout(() => void post('/hook', 'msg_late'), 50);
    await expect(waiting).resolves.toBeUndefined();
    await expect(receiver.waitFor(() => false, 50)).rejects.toThrow('within 50 ms (2 received)');
  });
});
