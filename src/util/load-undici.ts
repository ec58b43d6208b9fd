import type * as undici from 'undici';

let loading: Promise<typeof undici> | undefined;

/**
 * undici, loaded on first use. It costs about 18 MiB at start-up, which commands that never speak HTTP (a local
 * layout's encrypt or decrypt, keygen, inspect of a file) should not pay.
 */
export function loadUndici(): Promise<typeof undici> {
  return (loading ??= import('undici'));
}
