import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PluginInvalidError } from '../protocol/wire.js';
import { kbsBackend, kbsTestBackend } from './kbs/backend.js';
import { BACKEND_API_VERSION, type BackendDefinition } from './types.js';

/** Built-in backends by `--protocol` name. Adding one edits only this table. */
export const BUILTIN_BACKENDS: Readonly<Record<string, BackendDefinition>> = Object.freeze({
  [kbsBackend.name]: kbsBackend,
  [kbsTestBackend.name]: kbsTestBackend,
});

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
  const builtin = BUILTIN_BACKENDS[spec];
  if (builtin) return builtin;
  if (!isPluginSpecifier(spec)) {
    throw new PluginInvalidError(spec, `is neither a built-in backend (${Object.keys(BUILTIN_BACKENDS).join(', ')}) nor a module path (use ./name.js)`);
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolve(cwd, spec)).href)) as Record<string, unknown>;
  } catch (err) {
    throw new PluginInvalidError(spec, `cannot be loaded: ${(err as Error).message}`, { cause: err });
  }
  return assertBackendDefinition(mod.default ?? mod.backend, spec);
}
