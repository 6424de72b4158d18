import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root directory (where package.json is), from this module's place in dist/src. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** This package's version, from its package.json (read once, when first asked for). */
export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}
let version: string | undefined;
