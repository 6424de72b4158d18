/**
 * Our classes that esbuild renamed in the bundle (Foo → Foo2, when two
 * modules of a chunk declare Foo at top level). Without keepNames such a
 * class would log and compare (instanceof across copies) under the wrong
 * name, so scripts/bundle.mjs fails the build on any.
 */

/** The class names declared in our compiled sources. */
export function classNamesIn(sources: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const text of sources) for (const [, name] of text.matchAll(/\bclass ([A-Za-z_$][\w$]*)/g)) names.add(name as string);
  return names;
}

/** `Foo → Foo2` for each of `ours` renamed in a bundle output; esbuild writes a class as `class Foo` or `var Foo = class`. */
export function renamedClasses(ours: ReadonlySet<string>, output: string): string[] {
  const found: string[] = [];
  for (const [, renamed, base] of output.matchAll(/\b(([A-Za-z_$][\w$]*?)\d+)(?=\b = class\b|\b \{|\b extends\b)/g)) {
    if (ours.has(base as string) && !ours.has(renamed as string)) found.push(`${base} → ${renamed}`);
  }
  return found;
}
