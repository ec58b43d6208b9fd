import { describe, expect, it } from 'vitest';
import { layerSelected, parseLayerIndex, platformSelected } from '../../../src/ops/layer-selection.js';

describe('layer selection', () => {
  it('selects every layer by default', () => {
    expect([0, 1, 2].map((i) => layerSelected({}, i, 3, undefined))).toEqual([true, true, true]);
  });

  it('counts negative indices from the top', () => {
    const sel = { layers: [-1, 0] };
    expect([0, 1, 2].map((i) => layerSelected(sel, i, 3, undefined))).toEqual([true, false, true]);
  });

  it('refuses indices outside the image instead of wrapping them', () => {
    expect(() => layerSelected({ layers: [3] }, 0, 3, { os: 'linux', architecture: 'arm64' })).toThrow(
      '--layer 3 is outside the image: linux/arm64 has 3 layer(s), so valid indices are 0..2 or -3..-1',
    );
    expect(() => layerSelected({ layers: [-4] }, 0, 3, undefined)).toThrow(/outside the image/);
  });

  it('parses --layer values strictly', () => {
    expect(parseLayerIndex('-2')).toBe(-2);
    expect(() => parseLayerIndex('1.5')).toThrow(/must be an integer/);
  });

  it('matches platforms on os and architecture, and variant when given', () => {
    const arm = { os: 'linux', architecture: 'arm64', variant: 'v8' };
    expect(platformSelected({ platforms: [{ os: 'linux', architecture: 'arm64' }] }, arm)).toBe(true);
    expect(platformSelected({ platforms: [{ os: 'linux', architecture: 'arm64', variant: 'v7' }] }, arm)).toBe(false);
    expect(platformSelected({ platforms: [{ os: 'linux', architecture: 'amd64' }] }, undefined)).toBe(false);
    expect(platformSelected({}, undefined)).toBe(true);
  });
});
