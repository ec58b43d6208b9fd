/**
 * One challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1), e.g.
 * `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull"`.
 */
export interface AuthChallenge {
  /** Lower-cased: `basic` or `bearer` for registries. */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Record<string, string>;
}

// A token (scheme or parameter name), then for parameters `=` and a token or a quoted string.
const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;
const SPACE = /[ \t]*/y;

/**
 * Parses every challenge in a `WWW-Authenticate` value. Registries send one, but the grammar allows several
 * separated by commas, so parameters are told from a new challenge by the `=` that follows their name.
 */
export function parseAuthenticate(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  let pos = 0;
  const skip = (re: RegExp): string | undefined => {
    re.lastIndex = pos;
    const m = re.exec(header);
    if (m === null) return undefined;
    pos = re.lastIndex;
    return m[0];
  };
  const skipSeparators = (): void => {
    while (pos < header.length && (header[pos] === ',' || header[pos] === ' ' || header[pos] === '\t')) pos++;
  };

  skipSeparators();
  while (pos < header.length) {
    const scheme = skip(TOKEN);
    if (scheme === undefined) break;
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    skip(SPACE);
    for (;;) {
      const start = pos;
      skipSeparators();
      const name = skip(TOKEN);
      skip(SPACE);
      if (name === undefined || header[pos] !== '=') {
        pos = start; // not a parameter: the next challenge (or the end)
        break;
      }
      pos++;
      skip(SPACE);
      challenge.params[name.toLowerCase()] = header[pos] === '"' ? readQuoted() : (skip(TOKEN) ?? '');
      skip(SPACE);
    }
    skipSeparators();
  }
  return out;

  function readQuoted(): string {
    let value = '';
    pos++; // opening quote
    while (pos < header.length && header[pos] !== '"') {
      if (header[pos] === '\\' && pos + 1 < header.length) pos++;
      value += header[pos];
      pos++;
    }
    pos++; // closing quote
    return value;
  }
}
