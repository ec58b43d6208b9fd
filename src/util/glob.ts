/**
 * Repository globs as policies write them: `*` matches within one path segment, `**` across segments, e.g.
 * `registry.example/prod/**` or `registry.example/*\/app`.
 */
export function globToRegExp(glob: string): RegExp {
  // The webhook matches the same few policy globs on every review: compile each once.
  let compiled = cache.get(glob);
  if (compiled === undefined) {
    compiled = compile(glob);
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(glob, compiled);
  }
  return compiled;
}

const cache = new Map<string, RegExp>();
const MAX_CACHED = 10_000;

function compile(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') {
      re += '[^/]*';
    } else {
      re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

export function matchesAnyGlob(value: string, globs: readonly string[]): boolean {
  return globs.some((g) => globToRegExp(g).test(value));
}
