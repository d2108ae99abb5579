// A small request body read whole, for the plain HTTP endpoints (unsubscribe, provider feedback): null when
// it is larger than `maxBytes` (the rest is read and dropped, so the connection stays usable).
import type http from 'node:http';
import type http2 from 'node:http2';

export function readSmallBody(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  maxBytes: number,
): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > maxBytes ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
