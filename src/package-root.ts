import { fileURLToPath } from 'node:url';

/** The package's root directory (where package.json is), from this module's place in dist/src. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));
