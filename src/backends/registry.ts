import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PluginInvalidError } from '../protocol/errors.js';
import { BACKEND_API_VERSION, type BackendDefinition, type ListenerFacts, type RawBackendOptions } from './contract.js';
import { DEFAULT_BACKEND_CALL_TIMEOUT_MS, withDeadline } from './deadline.js';
import { checkKbsListener, type KbsOptions, parseKbsOptions } from './kbs/options.js';
import { letPluginsImportAproxy } from './plugin-imports.js';

interface BuiltinEntry {
  /** The backend's option checks, cheap to load: bad usage is found before anything is bound. */
  parseOptions(raw: RawBackendOptions): unknown;
  checkListener(options: unknown, listener: ListenerFacts): void;
  /** The backend itself (HTTP client, schemas), loaded once the listeners are up. */
  load(): Promise<AnyBackendDefinition>;
}

/** Both KBS backends: one option check, told apart by name; the backend module loads only when created. */
function kbsBuiltin(name: 'kbs' | 'kbs-test', pick: (m: typeof import('./kbs/backend.js')) => AnyBackendDefinition): BuiltinEntry {
  return {
    parseOptions: (raw) => parseKbsOptions(raw, name),
    checkListener: (options, listener) => checkKbsListener(options as KbsOptions, listener),
    load: async () => pick(await import('./kbs/backend.js')),
  };
}

/** Built-in backends by `--protocol` name. Adding one edits only this table. */
const BUILTINS: Readonly<Record<string, BuiltinEntry>> = Object.freeze({
  kbs: kbsBuiltin('kbs', (m) => m.kbsBackend),
  'kbs-test': kbsBuiltin('kbs-test', (m) => m.upstreamKbsTestBackend),
});

/** A definition whose options type is not known here: the registry only passes them through. */
// biome-ignore lint/suspicious/noExplicitAny: the options type is the backend's own; `unknown` would make every definition unassignable (create is contravariant in it)
export type AnyBackendDefinition = BackendDefinition<any>;

export const BUILTIN_BACKEND_NAMES: readonly string[] = Object.freeze(Object.keys(BUILTINS));

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
  if (d.apiVersion !== BACKEND_API_VERSION) {
    throw new PluginInvalidError(specifier, `declares apiVersion ${String(d.apiVersion)}, this aproxy speaks ${BACKEND_API_VERSION}`);
  }
  if (typeof d.name !== 'string' || d.name === '') throw new PluginInvalidError(specifier, '`name` must be a non-empty string');
  if (typeof d.create !== 'function') throw new PluginInvalidError(specifier, '`create(options, context)` must be a function');
  for (const hook of ['parseOptions', 'checkListener'] as const) {
    if (d[hook] !== undefined && typeof d[hook] !== 'function')
      throw new PluginInvalidError(specifier, `\`${hook}\`, when present, must be a function`);
  }
  return d as AnyBackendDefinition;
}

/**
 * Resolves `--protocol`: a built-in name, or a path to an ES module
 * exporting a backend. A plugin's top-level code runs in the proxy's
 * process (plugins are trusted code); still, its import has a deadline, so
 * a top-level `await` that never settles fails start-up with a clear error
 * instead of hanging it with nothing logged.
 */
export async function resolveBackend(
  spec: string,
  cwd = process.cwd(),
  loadTimeoutMs = DEFAULT_BACKEND_CALL_TIMEOUT_MS,
): Promise<AnyBackendDefinition> {
  const builtin = BUILTINS[spec];
  if (builtin) return builtin.load();
  if (!isPluginSpecifier(spec)) {
    throw new PluginInvalidError(
      spec,
      `is neither a built-in backend (${BUILTIN_BACKEND_NAMES.join(', ')}) nor a module path (use ./name.js)`,
    );
  }
  const hung = () =>
    new PluginInvalidError(
      spec,
      `did not finish loading within ${loadTimeoutMs} ms (backendCallTimeoutMs): does its top-level code await something that never settles?`,
    );
  let mod: Record<string, unknown>;
  letPluginsImportAproxy();
  try {
    mod = (await withDeadline(spec, 'import', loadTimeoutMs, () => import(pathToFileURL(resolve(cwd, spec)).href), hung)) as Record<
      string,
      unknown
    >;
  } catch (err) {
    if (err instanceof PluginInvalidError) throw err;
    throw new PluginInvalidError(spec, `cannot be loaded: ${(err as Error).message}`, { cause: err });
  }
  return assertBackendDefinition(mod.default ?? mod.backend, spec);
}

/** A backend whose options are checked and which can be loaded and created. */
export interface PreparedBackend {
  readonly name: string;
  /** What `parseOptions` made of the raw options. */
  readonly options: unknown;
  /** The backend's `checkListener` on these options; nothing when it has none. */
  checkListener(listener: ListenerFacts): void;
  load(): Promise<AnyBackendDefinition>;
}

/**
 * Finds the backend and checks its options, loading as little as it can: a
 * built-in's option check is separate from the backend, a plugin module is
 * loaded (its check is in it). Throws PLUGIN_INVALID or the backend's
 * ConfigError, before the proxy binds anything.
 */
export async function prepareBackend(
  spec: string | AnyBackendDefinition,
  raw: RawBackendOptions,
  cwd = process.cwd(),
  loadTimeoutMs = DEFAULT_BACKEND_CALL_TIMEOUT_MS,
): Promise<PreparedBackend> {
  const builtin = typeof spec === 'string' ? BUILTINS[spec] : undefined;
  if (builtin && typeof spec === 'string') {
    const options = builtin.parseOptions(raw);
    return { name: spec, options, checkListener: (l) => builtin.checkListener(options, l), load: () => builtin.load() };
  }
  const definition = typeof spec === 'string' ? await resolveBackend(spec, cwd, loadTimeoutMs) : spec;
  const options: unknown = definition.parseOptions ? definition.parseOptions(raw) : raw;
  return { name: definition.name, options, checkListener: (l) => definition.checkListener?.(options, l), load: async () => definition };
}
