/**
 * A stand-in for the Kubernetes API server's TokenReview endpoint, for Vault's Kubernetes auth without a cluster:
 * every service-account-shaped token it is asked about is "authenticated" as the subject and UID in its own claims
 * (tests mint them with service-accounts.ts; Vault checks the signature-free parts, the API server vouches). It
 * speaks plain HTTP; the auth method still insists on a CA certificate outside a pod, so a throwaway one comes along.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { runOk, tempDir } from './tools.js';

export interface TokenReviewServer {
  /** e.g. http://127.0.0.1:41234, for auth/kubernetes/config kubernetes_host */
  host: string;
  /** PEM of a throwaway CA, for kubernetes_ca_cert */
  caCert: string;
  /** The subjects reviewed so far, in order. */
  reviewed: string[];
  close(): Promise<void>;
}

export async function startTokenReview(audiences: string[] = ['vault']): Promise<TokenReviewServer> {
  const reviewed: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const token = (JSON.parse(body) as { spec: { token: string } }).spec.token;
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string; 'kubernetes.io': { serviceaccount: { uid: string } } };
      reviewed.push(claims.sub);
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          status: { authenticated: true, user: { username: claims.sub, uid: claims['kubernetes.io'].serviceaccount.uid }, audiences },
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dir = await tempDir('token-review-');
  try {
    const key = path.join(dir.path, 'ca.key');
    const cert = path.join(dir.path, 'ca.crt');
    await runOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=imagegate-test-cluster']);
    const caCert = await readFile(cert, 'utf8');
    return {
      host: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      caCert,
      reviewed,
      close: () => new Promise((r) => server.close(() => r())),
    };
  } catch (e) {
    server.close();
    throw e;
  } finally {
    await dir.cleanup();
  }
}
