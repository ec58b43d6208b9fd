import { readFile } from 'node:fs/promises';
import { ImagegateError, systemErrorCode } from '../errors.js';

/**
 * Reads a text file the user named (a flag, a setting) whose failure is theirs to fix: exit 2, with the system's
 * reason (`ENOENT`, `EACCES`, …) in the message `problem` words for that file.
 */
export async function readUserFile(file: string, problem: (reason: string) => string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new ImagegateError('USAGE', problem(systemErrorCode(e) ?? String(e)));
  }
}
