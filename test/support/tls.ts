// Test certificates, generated at test start with openssl into a temporary folder (no key is committed): a
// self-signed server certificate for 127.0.0.1 (emulators speaking TLS), and keys for signing provider JWTs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestCertificate {
  /** PEM; also the CA a client must trust. */
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
  /** Removes the folder. */
  remove(): void;
}

/**
 * A self-signed P-256 certificate for 127.0.0.1 and localhost, valid for two days. `extensions` adds
 * `-addext` values (e.g. Apple's push OID for an APNs client certificate).
 */
export function testCertificate(commonName = '127.0.0.1', extensions: string[] = []): TestCertificate {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-tls-'));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ...extensions.flatMap((e) => ['-addext', e]),
    ],
    { stdio: 'ignore' },
  );
  return {
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
    certFile,
    keyFile,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
