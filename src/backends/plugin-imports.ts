import module from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from '../package-root.js';

/** `aproxy` and `aproxy/…`: the public surfaces a plugin imports. */
export const isAproxySpecifier = (specifier: string) => specifier === 'aproxy' || specifier.startsWith('aproxy/');

type ResolveContext = { parentURL?: string };
type NextResolve = (specifier: string, context: ResolveContext) => unknown;
interface Hooks {
  registerHooks?: (hooks: { resolve: (specifier: string, context: ResolveContext, next: NextResolve) => unknown }) => void;
  register: (specifier: URL, options: { data: unknown }) => void;
}

let installed = false;

/**
 * A plugin is a module anywhere on the host (`/etc/aproxy/backends/x.js`),
 * usually with no node_modules holding aproxy above it. Its imports of
 * `aproxy/plugin`, `aproxy/jwe`, … are resolved as if made from inside this
 * package, so they find the running aproxy, whatever its install, and a
 * plugin shares its error classes and helpers. Other imports are untouched.
 */
export function letPluginsImportAproxy(): void {
  if (installed) return;
  installed = true;
  // Resolved from here, a package's own name refers to the package itself (self-reference through "exports").
  const parentURL = pathToFileURL(join(PACKAGE_ROOT, 'package.json')).href;
  const m = module as unknown as Hooks;
  if (typeof m.registerHooks === 'function') {
    m.registerHooks({
      resolve: (specifier, context, next) => next(specifier, isAproxySpecifier(specifier) ? { ...context, parentURL } : context),
    });
  } else {
    // Node 20 has only the asynchronous, off-thread hooks.
    m.register(new URL('./plugin-import-hooks.js', import.meta.url), { data: { parentURL } });
  }
}
