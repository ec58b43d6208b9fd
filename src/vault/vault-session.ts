import type nodeVault from 'node-vault';
import { ImagegateError } from '../errors.js';
import type { VaultAuth, VaultSettings } from './settings.js';
import { vaultError, vaultMessages } from './vault-error.js';

/** Vault's login answer, the part we use. */
interface LoginAuth {
  client_token: string;
  lease_duration: number;
  renewable: boolean;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Renew at this fraction of the token's lifetime, leaving time for a retry and a fresh login. */
const RENEW_AT = 2 / 3;

/**
 * One identity's connection to Vault, as a typed layer over node-vault (whose own types are `any`). It logs in
 * lazily, logs in again when the token is refused or runs out, can keep a long-running process's token renewed,
 * and counts round trips so batching can be checked. Nothing it sends can be printed by a debug setting: node-vault's
 * own debug logging (request bodies: secret ids, JWTs, layer keys) is switched off, and its requests go through our
 * undici transport (vault-http.ts) instead of axios, whose redirect library prints the token header under `DEBUG`.
 */
export class VaultSession {
  /** HTTP requests sent to Vault, logins included. */
  roundTrips = 0;
  /** Created on first use: node-vault (with its dependencies) costs several MiB that commands without Vault should not pay. */
  private clientCreated: Promise<nodeVault.client> | undefined;
  private token: string | undefined;
  private expiresAt = Infinity;
  private loggingIn: Promise<void> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;

  constructor(readonly settings: VaultSettings) {
    if (settings.auth.method === 'token') this.token = settings.auth.token;
  }

  private client(): Promise<nodeVault.client> {
    return (this.clientCreated ??= Promise.all([import('node-vault'), import('./vault-http.js')]).then(([{ default: nodeVault }, { vaultTransport }]) => {
      const settings = this.settings;
      const client = nodeVault({
        endpoint: settings.address,
        apiVersion: 'v1',
        ...(settings.namespace !== undefined ? { namespace: settings.namespace } : {}),
        debug: () => {},
        'request-promise': vaultTransport({ ...(settings.ca !== undefined ? { ca: settings.ca } : {}), timeoutMs: settings.timeoutMs ?? DEFAULT_TIMEOUT_MS }),
      } as nodeVault.VaultOptions);
      // node-vault adds VAULT_TOKEN from the environment to requests that carry no token header, logins included;
      // this session decides which token each request carries.
      (client as { token: string | undefined }).token = undefined;
      return client;
    }));
  }

  get address(): string {
    return this.settings.address;
  }

  /** POST to an API path with a JSON body, as this identity. `what` names the operation in messages. */
  async write<T>(path: string, body: Record<string, unknown>, what: string): Promise<T> {
    return this.call(path, what, async () => (await this.client()).write(path, body, this.headers()));
  }

  async read<T>(path: string, what: string): Promise<T> {
    return this.call(path, what, async () => (await this.client()).read(path, this.headers()));
  }

  /** GET that answers undefined when nothing is at the path (404), e.g. a role or policy not created yet. */
  async readIfPresent<T>(path: string, what: string): Promise<T | undefined> {
    return this.call(path, what, async () =>
      (await this.client()).read(path, this.headers()).catch((e: unknown) => {
        if ((e as { response?: { statusCode?: number } }).response?.statusCode === 404) return undefined;
        throw e;
      }),
    );
  }

  /** Logs in now (the first call does it anyway); useful to fail early with a clear error. */
  async ensureLoggedIn(): Promise<void> {
    if (this.token !== undefined && Date.now() < this.expiresAt) return;
    this.loggingIn ??= this.login().finally(() => (this.loggingIn = undefined));
    await this.loggingIn;
  }

  /**
   * Keeps the token alive for a long-running process (the webhook): renews it at two thirds of its lifetime and
   * logs in again when renewal is refused or the lifetime stops growing. Timers do not keep the process alive.
   */
  startRenewal(onError: (e: ImagegateError) => void = () => {}): void {
    this.stopRenewal();
    if (!Number.isFinite(this.expiresAt)) return;
    const delay = Math.max(1000, (this.expiresAt - Date.now()) * RENEW_AT);
    this.renewTimer = setTimeout(() => {
      this.renew()
        .catch((e: unknown) => onError(vaultError(e, { path: 'auth/token/renew-self', what: 'renew the Vault token', address: this.address })))
        .finally(() => this.startRenewal(onError));
    }, delay);
    this.renewTimer.unref();
  }

  stopRenewal(): void {
    if (this.renewTimer !== undefined) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }

  private async renew(): Promise<void> {
    await this.ensureLoggedIn();
    this.roundTrips++;
    const before = this.expiresAt;
    try {
      const res = (await (await this.client()).write('auth/token/renew-self', {}, this.headers())) as { auth?: LoginAuth };
      if (res.auth !== undefined) this.remember(res.auth);
      // A token at its max TTL renews without gaining time: log in again instead of running out.
      if (this.expiresAt <= before && this.settings.auth.method !== 'token') await this.login();
    } catch (e) {
      if (this.settings.auth.method === 'token') throw e;
      await this.login();
    }
  }

  private async call<T>(path: string, what: string, send: () => Promise<unknown>): Promise<T> {
    const ctx = { path, what, address: this.address };
    await this.ensureLoggedIn();
    for (let attempt = 1; ; attempt++) {
      this.roundTrips++;
      try {
        return (await send()) as T;
      } catch (e) {
        const status = (e as { response?: { statusCode?: number } }).response?.statusCode;
        // A 403 from an expired login token: log in once more and retry; a static token cannot be refreshed.
        if (status === 403 && attempt === 1 && this.settings.auth.method !== 'token') {
          await this.login();
          continue;
        }
        throw vaultError(e, ctx);
      }
    }
  }

  private headers(): Record<string, unknown> {
    return this.token !== undefined ? { headers: { 'X-Vault-Token': this.token } } : {};
  }

  private async login(): Promise<void> {
    const auth = this.settings.auth;
    if (auth.method === 'token') {
      throw new ImagegateError('AUTH', `the Vault token was refused by ${this.address} or expired; get a new one (VAULT_TOKEN)`);
    }
    const { path, body } = await loginRequest(auth);
    const ctx = { path, what: `log in to Vault (${auth.method} auth, mount ${auth.mount})`, address: this.address };
    this.roundTrips++;
    let res: { auth?: LoginAuth };
    try {
      res = (await (await this.client()).write(path, body, {})) as { auth?: LoginAuth };
    } catch (e) {
      const response = (e as { response?: { statusCode?: number; body?: unknown } }).response;
      // A refused login is about the identity, not a path: say which method, mount and role.
      if (response?.statusCode === 400 || response?.statusCode === 403) {
        const role = 'role' in auth ? ` as role "${auth.role}"` : '';
        throw new ImagegateError('AUTH', `Vault at ${this.address} refused the ${auth.method} login at ${path}${role}: ${vaultMessages(response.body) || `HTTP ${response.statusCode}`}`);
      }
      throw vaultError(e, ctx);
    }
    if (res.auth === undefined || typeof res.auth.client_token !== 'string') {
      throw new ImagegateError('VAULT', `Vault at ${this.address} answered the login to ${path} without a token`);
    }
    this.remember(res.auth);
  }

  private remember(auth: LoginAuth): void {
    this.token = auth.client_token;
    this.expiresAt = auth.lease_duration > 0 ? Date.now() + auth.lease_duration * 1000 : Infinity;
  }
}

async function loginRequest(auth: Exclude<VaultAuth, { method: 'token' }>): Promise<{ path: string; body: Record<string, unknown> }> {
  switch (auth.method) {
    case 'approle':
      return { path: `auth/${auth.mount}/login`, body: { role_id: auth.roleId, secret_id: auth.secretId } };
    case 'jwt':
    case 'kubernetes':
      // Always the mount in the path: node-vault's own kubernetesLogin renders `auth//login` without it.
      return { path: `auth/${auth.mount}/login`, body: { role: auth.role, jwt: await auth.jwt() } };
  }
}
