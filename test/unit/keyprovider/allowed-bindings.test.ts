import { describe, expect, it } from 'vitest';
import { assertBindingAllowed, canonicalBindingGlob } from '../../../src/keyprovider/allowed-bindings.js';

const glob = (g: string): string => canonicalBindingGlob(g, 'allowedBindings[0]');

describe('allowedBindings globs', () => {
  it.each([
    ['registry.example/team/**', 'registry.example/team/**'],
    ['Registry.EXAMPLE:443/team/*', 'registry.example/team/*'],
    ['localhost:5000/app', 'localhost:5000/app'],
    ['index.docker.io/myteam/**', 'docker.io/myteam/**'],
    ['registry-1.docker.io/nginx', 'docker.io/library/nginx'],
    ['docker.io/*', 'docker.io/library/*'],
    ['docker.io/**', 'docker.io/**'],
  ])('%s is compared as %s', (text, canonical) => {
    expect(glob(text)).toBe(canonical);
  });

  it.each([
    ['team/**', /does not start with a registry host; write it out, e.g. docker.io\/team\/\*\*/],
    ['**', /is not HOST\/PATH/],
    ['registry.example', /is not HOST\/PATH/],
    ['registry.example/', /is not HOST\/PATH/],
    ['*.example/team/**', /has a wildcard in the registry host/],
  ])('refuses %s', (text, message) => {
    expect(() => glob(text)).toThrow(message);
  });

  const allowed = ['registry.example/team/**', 'docker.io/library/*'].map(glob);

  it.each([
    'registry.example/team/app',
    'registry.example/team/sub/app',
    'REGISTRY.example:443/team/app',
    'docker.io/nginx',
    'registry-1.docker.io/library/nginx',
  ])('lets %s through (canonical form)', (binding) => {
    expect(() => assertBindingAllowed(binding, allowed, 'unwrap')).not.toThrow();
  });

  it.each([
    ['registry.example/other/app', 'registry.example/other/app'],
    ['registry.example:5000/team/app', 'registry.example:5000/team/app'],
    ['docker.io/someone/app', 'docker.io/someone/app'],
  ])('refuses %s, naming the binding and the setting', (binding, canonical) => {
    let error: unknown;
    try {
      assertBindingAllowed(binding, allowed, 'key-provider unwrap');
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'AUTH' });
    expect((error as Error).message).toBe(
      `key-provider unwrap: the layer key is bound to repository ${canonical}, which this key provider may not unwrap: it is outside allowedBindings ` +
        'in its configuration (registry.example/team/**, docker.io/library/*). Run the workload on a node pool whose key provider allows that repository, ' +
        'or add a glob that matches it to allowedBindings in the key-provider config',
    );
  });

  it('refuses a binding that is not a repository name, and everything when the list is empty', () => {
    expect(() => assertBindingAllowed('not a name', allowed, 'unwrap')).toThrow(/bound to repository "not a name"/);
    expect(() => assertBindingAllowed('registry.example/team/app', [], 'unwrap')).toThrow(/outside allowedBindings in its configuration \(none\)/);
  });
});
