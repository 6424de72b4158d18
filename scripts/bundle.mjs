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
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

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
  // Stack traces and the error names logs show keep their names.
  keepNames: true,
  metafile: true,
  logLevel: 'warning',
  // The CommonJS packages (undici, pino, prom-client) call require() for Node's modules.
  banner: { js: "import { createRequire as __aproxyRequire } from 'node:module'; const require = __aproxyRequire(import.meta.url);" },
});
writeFileSync(join(outdir, 'meta.json'), JSON.stringify(result.metafile));
