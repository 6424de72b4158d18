// The command line as bin/aproxy runs it: dist/bundle/, made from tsc's
// output in dist/src by esbuild. Node resolves and reads one file per module,
// and aproxy with its packages is ~400 modules; a bundle is a few dozen
// files. Code splitting keeps the lazy parts lazy: what a command imports
// with import() is a chunk of its own, loaded when it is needed, as before.
// The library surfaces (aproxy, aproxy/plugin, …) stay dist/src, unbundled;
// a plugin's errors are recognised across the two by their registered
// symbol (protocol/errors.ts).
//
//   node scripts/bundle.mjs      (npm run build, npm test and npm pack run it after tsc)
//
// dist/bundle/meta.json is esbuild's metafile: which sources each output
// holds, read by the import-cost test and the package-contents test.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { classNamesIn, renamedClasses } from '../dist/scripts/bundle-names.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: {
    main: 'dist/src/cli/main.js',
    // Imported by bin/aproxy before main, so a SIGHUP while the rest loads is held.
    'early-signals': 'dist/src/cli/early-signals.js',
    // Node 20 runs it on the loader thread by its URL beside the code that registers it.
    'plugin-import-hooks': 'dist/src/backends/plugin-import-hooks.js',
  },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // No keepNames: it wraps every named closure in a call that redefines its
  // name, 1.7 % of the CPU per boot. Without minifying, esbuild renames only
  // a top-level name that two modules of a chunk share; the check below keeps
  // our classes (the error names logs show and instanceof reads) out of that.
  metafile: true,
  // prom-client's exemplars, which aproxy never enables, are all it reads @opentelemetry/api for (the stub says more).
  alias: { '@opentelemetry/api': './scripts/bundle-stubs/opentelemetry-api.cjs' },
  logLevel: 'warning',
  // The CommonJS packages (undici, pino, prom-client) call require() for Node's modules.
  banner: { js: "import { createRequire as __aproxyRequire } from 'node:module'; const require = __aproxyRequire(import.meta.url);" },
});
writeFileSync(join(outdir, 'meta.json'), JSON.stringify(result.metafile));

// A class of ours that esbuild renamed (Foo → Foo2) would log and compare under the wrong name.
const ours = classNamesIn(
  readdirSync(join(root, 'dist', 'src'), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.js'))
    .map((f) => readFileSync(join(root, 'dist', 'src', f), 'utf8')),
);
for (const out of Object.keys(result.metafile.outputs).filter((o) => o.endsWith('.js'))) {
  const renamed = renamedClasses(ours, readFileSync(join(root, out), 'utf8'));
  if (renamed.length > 0) {
    throw new Error(`${out}: ${renamed.join(', ')} (two modules of the chunk declare the name at top level); rename one of them`);
  }
}
