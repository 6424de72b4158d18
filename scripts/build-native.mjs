// The vsock addon (native/vsock, C, N-API). Two uses:
//
//   node scripts/build-native.mjs            npm's install step. Uses the
//     prebuilt binary the package carries when one fits this platform and
//     loads; otherwise builds from source with the node-gyp that npm ships.
//     If neither works, aproxy still installs and serves Unix sockets;
//     `--vsock` then says why in one line. Never fails the install.
//   node scripts/build-native.mjs --prebuild npm pack's step (prepack):
//     builds from source and stores the binary under prebuilds/, where
//     node-gyp-build finds it at run time. Fails if it cannot build.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'vsock');
const require = createRequire(import.meta.url);
const prebuild = process.argv.includes('--prebuild');

/** Builds with node-gyp; returns why not, or undefined once built. */
function build() {
  const gyp = process.env.npm_config_node_gyp;
  if (gyp === undefined || !existsSync(gyp)) return 'node-gyp not found (run the install through npm)';
  // Against the running Node's own headers when it has them (no download: these hosts may be offline).
  const prefix = join(dirname(process.execPath), '..');
  const local = process.env.npm_config_nodedir === undefined && existsSync(join(prefix, 'include', 'node', 'node_api.h'));
  const r = spawnSync(process.execPath, [gyp, 'rebuild', ...(local ? [`--nodedir=${prefix}`] : [])], { cwd: dir, encoding: 'utf8' });
  if (r.status === 0) return undefined;
  return (
    `${r.stderr}\n${r.stdout}`
      .split('\n')
      .find((l) => /error|not found|No such/i.test(l))
      ?.trim() ?? `node-gyp exited ${r.status}`
  );
}

/** The prebuilt binary that fits and loads here, if any. */
function fittingPrebuild() {
  try {
    const path = require('node-gyp-build').path(dir);
    if (!path.includes(join('prebuilds', ''))) return undefined;
    require(path);
    return path;
  } catch {
    return undefined;
  }
}

if (platform() !== 'linux') {
  console.log('aproxy: vsock addon skipped (AF_VSOCK is Linux only)');
} else if (prebuild) {
  const why = build();
  if (why !== undefined) {
    console.error(`aproxy: cannot build the vsock addon for the package: ${why}`);
    process.exit(1);
  }
  // node-gyp-build's naming: N-API (one binary for every Node line), glibc (not musl).
  const target = join(dir, 'prebuilds', `linux-${arch()}`, 'vsock.napi.glibc.node');
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(dir, 'build', 'Release', 'vsock.node'), target);
  console.log(`aproxy: prebuilt vsock addon stored at ${relative(process.cwd(), target)}`);
} else {
  const fits = fittingPrebuild();
  if (fits !== undefined) console.log(`aproxy: vsock addon: using the prebuilt ${relative(dir, fits)} (no compiler needed)`);
  else {
    const why = build();
    if (why === undefined) console.log('aproxy: vsock addon built from source');
    else
      console.log(
        `aproxy: vsock addon not built (${why}); --vsock needs a prebuilt binary for this platform, or python3, make, a C compiler and Node headers; --unix works without it`,
      );
  }
}
