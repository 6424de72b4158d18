import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../scripts/processes.js';

// Compiled to dist/test/support; the vectors stay in the source tree.
const root = REPO_ROOT;
export const VECTORS_DIR = join(root, 'test', 'vectors');

export function vectorText(name: string): string {
  return readFileSync(join(VECTORS_DIR, name), 'utf8');
}

export function vectorJson<T = unknown>(name: string): T {
  return JSON.parse(vectorText(name)) as T;
}

export function vectorHex(name: string): Buffer {
  return Buffer.from(vectorText(name).trim(), 'hex');
}
