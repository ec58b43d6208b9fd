import { ImagegateError } from '../errors.js';
import { formatPlatform, platformMatches, type Platform } from '../image/descriptor.js';

/**
 * Which layers of which platforms an op touches. Layer indices count from 0 at the bottom layer; negative ones
 * count from the top (-1 = last), as skopeo's --encrypt-layer and ctr-enc's --layer do. An index outside the
 * image is an error (old containers/image silently wrapped it modulo the layer count).
 */
export interface LayerSelection {
  /** Undefined: every layer. */
  layers?: readonly number[];
  /** Undefined or empty: every platform. */
  platforms?: readonly Platform[];
}

export function platformSelected(sel: LayerSelection, platform: Platform | undefined): boolean {
  if (sel.platforms === undefined || sel.platforms.length === 0) return true;
  return sel.platforms.some((p) => platformMatches(p, platform));
}

/** True when layer `index` of `count` is selected; throws for indices outside the image. */
export function layerSelected(sel: LayerSelection, index: number, count: number, platform: Platform | undefined): boolean {
  if (sel.layers === undefined) return true;
  for (const wanted of sel.layers) {
    if (wanted >= count || wanted < -count) {
      throw new ImagegateError(
        'USAGE',
        `--layer ${wanted} is outside the image: ${platform !== undefined ? `${formatPlatform(platform)} has` : 'it has'} ${count} layer(s), so valid indices are 0..${count - 1} or -${count}..-1`,
      );
    }
  }
  return sel.layers.some((wanted) => (wanted < 0 ? count + wanted : wanted) === index);
}

/** Parses a `--layer` value. */
export function parseLayerIndex(s: string): number {
  if (!/^-?\d+$/.test(s)) throw new ImagegateError('USAGE', `--layer ${JSON.stringify(s)} must be an integer (0 = bottom layer, -1 = top layer)`);
  return Number(s);
}
