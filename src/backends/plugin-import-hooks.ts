/**
 * The resolve hook of plugin-imports.ts for Node lines without
 * module.registerHooks (20): registered with module.register, it runs on
 * the loader thread, so it is a module of its own.
 */
import { isAproxySpecifier } from './plugin-imports.js';

let parentURL = '';

export function initialize(data: { parentURL: string }): void {
  parentURL = data.parentURL;
}

export function resolve(
  specifier: string,
  context: { parentURL?: string },
  next: (s: string, c: { parentURL?: string }) => unknown,
): unknown {
  return next(specifier, isAproxySpecifier(specifier) ? { ...context, parentURL } : context);
}
