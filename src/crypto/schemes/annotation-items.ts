/**
 * An annotation's value is a comma-separated list of standard-base64 items (ocicrypt appends one per wrapping
 * run). Items that are not base64 are reported, not silently skipped.
 */
export function splitAnnotationItems(value: string): Array<Buffer | Error> {
  return value
    .split(',')
    .filter((s) => s !== '')
    .map((s) => (/^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0 ? Buffer.from(s, 'base64') : new Error('could not base64 decode the annotation')));
}

export function joinAnnotationItems(existing: string | undefined, item: Buffer): string {
  const encoded = item.toString('base64');
  return existing === undefined || existing === '' ? encoded : `${existing},${encoded}`;
}
