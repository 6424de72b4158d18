import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PluginInvalidError } from '../protocol/errors.js';
import { BACKEND_API_VERSION, type BackendDefinition } from './types.js';

/**
 * Built-in backends by `--protocol` name, loaded on demand (a backend pulls
 * in its HTTP client and schemas). Adding one edits only this table.
 */
const BUILTIN_LOADERS: Readonly<Record<string, () => Promise<BackendDefinition>>> = Object.freeze({
  kbs: async () => (await import('./kbs/backend.js')).kbsBackend,
  'kbs-test': async () => (await import('./kbs/backend.js')).kbsTestBackend,
});

export const BUILTIN_BACKEND_NAMES: readonly string[] = Object.freeze(Object.keys(BUILTIN_LOADERS));

/** True when `--protocol` names a module path rather than a built-in. */
export function isPluginSpecifier(spec: string): boolean {
  return spec.includes('/') || spec.includes('\\') || /\.[cm]?js$/.test(spec) || isAbsolute(spec);
}

/** Checks that a plugin module export is a usable backend definition. */
export function assertBackendDefinition(value: unknown, specifier: string): BackendDefinition {
  if (typeof value !== 'object' || value === null) {
    throw new PluginInvalidError(specifier, 'must export a backend definition as its default export or as `backend` (see defineBackend)');
  }
  const d = value as Partial<BackendDefinition>;
  if (d.apiVersion !== BACKEND_API_VERSION) {
    throw new PluginInvalidError(specifier, `declares apiVersion ${String(d.apiVersion)}, this aproxy speaks ${BACKEND_API_VERSION}`);
  }
  if (typeof d.name !== 'string' || d.name === '') throw new PluginInvalidError(specifier, '`name` must be a non-empty string');
  if (typeof d.create !== 'function') throw new PluginInvalidError(specifier, '`create(options)` must be a function');
  return d as BackendDefinition;
}

/** Resolves `--protocol`: a built-in name, or a path to an ES module exporting a backend. */
export async function resolveBackend(spec: string, cwd = process.cwd()): Promise<BackendDefinition> {
  const builtin = BUILTIN_LOADERS[spec];
  if (builtin) return builtin();
  if (!isPluginSpecifier(spec)) {
    throw new PluginInvalidError(spec, `is neither a built-in backend (${BUILTIN_BACKEND_NAMES.join(', ')}) nor a module path (use ./name.js)`);
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolve(cwd, spec)).href)) as Record<string, unknown>;
  } catch (err) {
    throw new PluginInvalidError(spec, `cannot be loaded: ${(err as Error).message}`, { cause: err });
  }
  return assertBackendDefinition(mod.default ?? mod.backend, spec);
}
