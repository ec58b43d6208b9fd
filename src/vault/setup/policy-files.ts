import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ImagegateError, systemErrorCode } from '../../errors.js';
import type { GeneratedPolicy } from './generate.js';

/** Writes each policy as DIR/NAME.hcl (the directory is created); returns the files written. */
export async function writePolicyFiles(dir: string, policies: GeneratedPolicy[]): Promise<string[]> {
  const files: string[] = [];
  try {
    await mkdir(dir, { recursive: true });
    for (const p of policies) {
      const file = path.join(dir, `${p.name}.hcl`);
      await writeFile(file, p.hcl);
      files.push(file);
    }
  } catch (e) {
    throw new ImagegateError('DESTINATION', `cannot write policies to ${dir} (${systemErrorCode(e) ?? String(e)})`, { cause: e });
  }
  return files;
}
