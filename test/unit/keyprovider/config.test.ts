import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadKeyProviderConfig } from '../../../src/keyprovider/config.js';
import { tempDir } from '../../support/tools.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ path: dir, cleanup } = await tempDir('kp-config-'));
});
afterAll(async () => cleanup());

async function load(json: unknown): Promise<ReturnType<typeof loadKeyProviderConfig>> {
  const file = path.join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, typeof json === 'string' ? json : JSON.stringify(json));
  return loadKeyProviderConfig(file, {});
}

describe('key-provider config', () => {
  it('reads vault settings, defaults and allowedBindings (canonical globs)', async () => {
    const c = await load({ vault: { VAULT_ADDR: 'https://v' }, defaultKey: 'transit/k', defaultBinding: 'r.example/a', allowedBindings: ['Registry.Example:443/team/**'] });
    expect(c).toEqual({ vault: { VAULT_ADDR: 'https://v' }, defaultKey: 'transit/k', defaultBinding: 'r.example/a', allowedBindings: ['registry.example/team/**'] });
  });

  it('reads the shipped deploy/runtime/keyprovider.json, whose $comment documents the settings', async () => {
    const file = path.join(import.meta.dirname, '../../../deploy/runtime/keyprovider.json');
    const shipped = await loadKeyProviderConfig(file, {});
    expect(Object.keys(shipped.vault)).toContain('VAULT_ADDR');
    // The documented example is itself a valid setting.
    const comment = (JSON.parse(await readFile(file, 'utf8')) as { $comment: string[] }).$comment.join(' ');
    const example = /"allowedBindings": (\[[^\]]*\])/.exec(comment);
    expect(example).not.toBeNull();
    expect((await load({ allowedBindings: JSON.parse(example![1]!) as string[] })).allowedBindings).toEqual(['registry.example.com/team-a/**', 'registry.example.com/shared/*']);
  });

  it('leaves allowedBindings unset when the file does not have it (every binding the node can unwrap)', async () => {
    expect((await load({ vault: {} })).allowedBindings).toBeUndefined();
  });

  it.each([
    ['a misspelt setting', { allowedBinding: ['registry.example/**'] }, /"allowedBinding" is not a setting this build knows; the settings are vault, allowedBindings, defaultKey, defaultBinding, repository/],
    ['allowedBindings as a string', { allowedBindings: 'registry.example/**' }, /"allowedBindings" must be a list of repository globs/],
    ['a glob without a host', { allowedBindings: ['registry.example/a/**', 'team/**'] }, /allowedBindings\[1\] "team\/\*\*" does not start with a registry host/],
    ['not an object', '[]', /is not a JSON object/],
  ])('refuses %s', async (_name, json, message) => {
    await expect(load(json)).rejects.toThrow(message);
  });
});
