import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to dist/test/support; the vectors stay in the source tree.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
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
