import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PluginInvalidError } from '../protocol/errors.js';
import { BACKEND_API_VERSION, type BackendDefinition } from './contract.js';

/**
 * Built-in backends by `--protocol` name, loaded on demand (a backend pulls
 * in its HTTP client and schemas). Adding one edits only this table.
 */
const BUILTIN_LOADERS: Readonly<Record<string, () => Promise<AnyBackendDefinition>>> = Object.freeze({
  kbs: async () => (await import('./kbs/backend.js')).kbsBackend,
  'kbs-test': async () => (await import('./kbs/backend.js')).upstreamKbsTestBackend,
});

/** A definition whose options type is not known here: the registry only passes them through. */
export type AnyBackendDefinition = BackendDefinition<any>;

export const BUILTIN_BACKEND_NAMES: readonly string[] = Object.freeze(Object.keys(BUILTIN_LOADERS));

/** True when `--protocol` names a module path rather than a built-in. */
export function isPluginSpecifier(spec: string): boolean {
  return spec.includes('/') || spec.includes('\\') || /\.[cm]?js$/.test(spec) || isAbsolute(spec);
}

/** Checks that a plugin module export is a usable backend definition. */
export function assertBackendDefinition(value: unknown, specifier: string): AnyBackendDefinition {
  if (typeof value !== 'object' || value === null) {
    throw new PluginInvalidError(specifier, 'must export a backend definition as its default export or as `backend` (see defineBackend)');
  }
  const d = value as Partial<BackendDefinition>;
  if ((d.apiVersion as unknown) === 1) {
    throw new PluginInvalidError(
      specifier,
      `declares apiVersion 1; this aproxy speaks ${BACKEND_API_VERSION}: create(options, context) now receives the backend's own options ` +
        '(add parseOptions) and the logger as context.log; see docs/backends.md, "From API version 1"',
    );
  }
  if (d.apiVersion !== BACKEND_API_VERSION) {
    throw new PluginInvalidError(specifier, `declares apiVersion ${String(d.apiVersion)}, this aproxy speaks ${BACKEND_API_VERSION}`);
  }
  if (typeof d.name !== 'string' || d.name === '') throw new PluginInvalidError(specifier, '`name` must be a non-empty string');
  if (typeof d.create !== 'function') throw new PluginInvalidError(specifier, '`create(options, context)` must be a function');
  if (d.parseOptions !== undefined && typeof d.parseOptions !== 'function') throw new PluginInvalidError(specifier, '`parseOptions`, when present, must be a function');
  return d as AnyBackendDefinition;
}

/** Resolves `--protocol`: a built-in name, or a path to an ES module exporting a backend. */
export async function resolveBackend(spec: string, cwd = process.cwd()): Promise<AnyBackendDefinition> {
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
