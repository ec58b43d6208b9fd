import type { Command } from 'commander';
import { roleTemplateProblem, type CheckContainerSettings } from '../../src/pod-model/injected-containers.js';
import { ImageResolver } from '../../src/admission/resolver.js';
import { ImagegateError } from '../../src/errors.js';
import { parseCount } from '../../src/util/size.js';
import { readCaCertificateFile } from '../../src/util/ca-certificate-file.js';
import { inClusterApi, kubernetesPullSecrets } from '../../webhook/pull-secrets.js';
import { watchPolicyFile } from '../../webhook/policy-watch.js';
import { startWebhookServer } from '../../webhook/server.js';
import { info } from '../run.js';
import { addTransferOptions, transferSettings, type TransferFlags } from '../transfer-options.js';
import { registerWebhookReview } from './webhook-review.js';

interface ServeFlags extends TransferFlags {
  policy: string;
  cert: string;
  key: string;
  listen: string;
  budgetMs: string;
  cacheTtl: string;
  negativeTtl: string;
  cacheSize: string;
  checkImage?: string;
  checkVaultAddr?: string;
  checkVaultRole?: string;
  checkVaultAuth: string;
  checkAuthMount?: string;
  checkAudience: string;
  checkRegistryCa?: string;
  kubeApi?: string;
  pullSecrets: boolean;
  kubeTokenFile: string;
  kubeCaFile: string;
  certPollMs: string;
}

export function registerWebhook(program: Command): void {
  const webhook = program.command('webhook').summary('the Kubernetes admission webhook');
  const serve = webhook
    .command('serve')
    .summary('serve the validating and mutating admission webhook over HTTPS')
    .requiredOption('--policy <file>', 'the AdmissionPolicy YAML (re-read when it changes)')
    .requiredOption('--cert <file>', 'TLS certificate (PEM; re-read when it changes)')
    .requiredOption('--key <file>', 'TLS private key (PEM)')
    .option('--listen <host:port>', 'address to listen on', '0.0.0.0:8443')
    .option('--budget-ms <ms>', 'time allowed for the registry look-ups of one review; keep it well under the webhook timeout', '2500')
    .option('--cache-ttl <seconds>', 'how long a resolved image is remembered', '300')
    .option('--negative-ttl <seconds>', 'how long a failed look-up is remembered', '10')
    .option('--cache-size <n>', 'images remembered at most', '2000')
    .option('--check-image <image>', "node model: imagegate's own image (by digest) for the injected `init --check` container")
    .option('--check-vault-addr <url>', 'node model: Vault address the check container uses')
    .option('--check-vault-role <role>', 'Vault role pods log in as; {namespace} and {serviceAccount} stand for the pod\'s, e.g. {namespace} for one role per team')
    .option('--check-vault-auth <method>', 'node model: jwt or kubernetes', 'jwt')
    .option('--check-auth-mount <path>', 'node model: the auth mount, when not at the default path')
    .option('--check-audience <aud>', 'node model: audience of the projected token the Vault role accepts', 'vault')
    .option('--check-registry-ca <file>', "PEM CA the injected containers trust for registry TLS (a private registry's CA); passed to them in their environment")
    .option('--kube-api <url>', "Kubernetes API for reading pods' imagePullSecrets (default: in-cluster)")
    .option('--no-pull-secrets', "never read pods' imagePullSecrets (no Kubernetes API access: RBAC may deny the webhook all secrets)")
    .option('--kube-token-file <file>', 'bearer token for --kube-api', '/var/run/secrets/kubernetes.io/serviceaccount/token')
    .option('--kube-ca-file <file>', 'CA of --kube-api', '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt')
    .option('--cert-poll-ms <ms>', 'how often the certificate files are checked for rotation', '5000');
  addTransferOptions(serve, false).action(async (flags: ServeFlags) => {
    const [host, portText] = splitHostPort(flags.listen);
    const port = parseCount(portText, '--listen port', 0, 65535);
    const policy = await watchPolicyFile(flags.policy, { intervalMs: 5_000, log: (m) => info(`imagegate webhook: ${m}`) });
    const transfer = await transferSettings({ ...flags, quiet: true }, 'webhook');
    const api = !flags.pullSecrets
      ? undefined
      : flags.kubeApi !== undefined
        ? { url: flags.kubeApi, tokenFile: flags.kubeTokenFile, caFile: flags.kubeCaFile }
        : inClusterApi();
    const resolver = new ImageResolver({
      registry: transfer.source.registry ?? {},
      ...(api !== undefined ? { pullSecrets: kubernetesPullSecrets(api, (m) => info(`imagegate webhook: ${m}`)) } : {}),
      cache: {
        maxEntries: parseCount(flags.cacheSize, '--cache-size', 1, 1_000_000),
        ttlMs: parseCount(flags.cacheTtl, '--cache-ttl', 0, 86_400) * 1000,
        negativeTtlMs: parseCount(flags.negativeTtl, '--negative-ttl', 0, 3_600) * 1000,
      },
    });
    const check = await checkSettings(flags);
    // A stray rejection must not take the webhook (and with it every deployment) down; it is a bug to report.
    process.on('unhandledRejection', (e) => info(`imagegate webhook: internal error (please report): ${e instanceof Error ? e.message : String(e)}`));
    const server = await startWebhookServer({
      host,
      port,
      certFile: flags.cert,
      keyFile: flags.key,
      cache: resolver.cache,
      certPollMs: parseCount(flags.certPollMs, '--cert-poll-ms', 100, 600_000),
      deps: {
        policy: () => policy.current(),
        resolve: (image, ctx) => resolver.resolve(image, ctx),
        budgetMs: parseCount(flags.budgetMs, '--budget-ms', 100, 30_000),
        ...(check !== undefined ? { check } : {}),
      },
    });
    process.stdout.write(`${server.url}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    info('imagegate webhook: shutting down; finishing requests in flight');
    policy.stop();
    await server.close();
    // Requests are answered; look-ups still hanging on an unresponsive registry must not keep the pod terminating.
    process.exit(0);
  });
  registerWebhookReview(webhook);
}

function splitHostPort(text: string): [string, string] {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(text);
  if (m === null) throw new ImagegateError('USAGE', `--listen ${JSON.stringify(text)} must be HOST:PORT, e.g. 0.0.0.0:8443`);
  return [m[1]!, m[2]!];
}

async function checkSettings(flags: ServeFlags): Promise<CheckContainerSettings | undefined> {
  if (flags.checkImage === undefined) return undefined;
  if (flags.checkVaultAddr === undefined || flags.checkVaultRole === undefined) {
    throw new ImagegateError('USAGE', '--check-image needs --check-vault-addr and --check-vault-role (the Vault the check container asks, and the role pods log in as)');
  }
  if (flags.checkVaultAuth !== 'jwt' && flags.checkVaultAuth !== 'kubernetes') throw new ImagegateError('USAGE', '--check-vault-auth must be jwt or kubernetes');
  const roleProblem = roleTemplateProblem(flags.checkVaultRole);
  if (roleProblem !== undefined) throw new ImagegateError('USAGE', `--check-vault-role ${roleProblem}`);
  return {
    image: flags.checkImage,
    vaultAddress: flags.checkVaultAddr,
    authMethod: flags.checkVaultAuth,
    vaultRole: flags.checkVaultRole,
    audience: flags.checkAudience,
    ...(flags.checkAuthMount !== undefined ? { authMount: flags.checkAuthMount } : {}),
    ...(flags.checkRegistryCa !== undefined
      ? { registryCa: await readCaCertificateFile(flags.checkRegistryCa, '--check-registry-ca') }
      : {}),
  };
}
