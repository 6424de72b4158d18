// The vsock addon (native/vsock, C, N-API). Two uses:
//
//   node scripts/build-native.mjs            npm's install step. Uses the
//     prebuilt binary the package carries when one fits this platform,
//     matches its checksum in prebuilds/SHA256SUMS and loads; otherwise
//     builds from source with the node-gyp that npm ships. If neither
//     works, aproxy still installs and serves Unix sockets; `--vsock` then
//     says why in one line. Never fails the install.
//   node scripts/build-native.mjs --prebuild npm pack's step (prepack):
//     empties prebuilds/, builds from source, stores the binary stripped
//     where node-gyp-build finds it at run time, and records its SHA-256 in
//     prebuilds/SHA256SUMS (`sha256sum -c` reads it). So the package holds
//     exactly one binary this step made, whatever lay in the directory.
//     Fails if it cannot build or strip.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'vsock');
const require = createRequire(import.meta.url);
const prebuild = process.argv.includes('--prebuild');
const prebuilds = join(dir, 'prebuilds');
const sums = join(prebuilds, 'SHA256SUMS');

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

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

/** The prebuilt binary that fits, matches its recorded checksum and loads here; or why none does. */
function fittingPrebuild() {
  let path;
  try {
    path = require('node-gyp-build').path(dir);
  } catch {
    return { why: 'no prebuilt binary for this platform' };
  }
  if (!path.startsWith(join(prebuilds, ''))) return { why: 'no prebuilt binary for this platform' };
  const name = relative(prebuilds, path);
  const recorded = existsSync(sums)
    ? readFileSync(sums, 'utf8')
        .split('\n')
        .map((l) => /^([0-9a-f]{64}) {2}(.+)$/.exec(l))
        .find((m) => m?.[2] === name)?.[1]
    : undefined;
  if (recorded === undefined) return { why: `prebuilds/${name} is not in prebuilds/SHA256SUMS` };
  if (recorded !== sha256(path)) return { why: `prebuilds/${name} does not match its checksum in prebuilds/SHA256SUMS` };
  try {
    require(path);
    return { path };
  } catch (err) {
    return { why: `prebuilds/${name} does not load: ${err.message.split('\n')[0]}` };
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
  const name = join(`linux-${arch()}`, 'vsock.napi.glibc.node');
  const target = join(prebuilds, name);
  rmSync(prebuilds, { recursive: true, force: true });
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(dir, 'build', 'Release', 'vsock.node'), target);
  // Symbols and debug sections are no use to an operator; an unstripped binary is several times the size.
  const strip = spawnSync('strip', ['--strip-unneeded', target], { encoding: 'utf8' });
  if (strip.status !== 0) {
    console.error(
      `aproxy: cannot strip the prebuilt vsock addon: ${strip.error?.message ?? strip.stderr.trim()} (binutils' strip is needed to pack)`,
    );
    process.exit(1);
  }
  writeFileSync(sums, `${sha256(target)}  ${name}\n`);
  console.log(`aproxy: prebuilt vsock addon stored at ${relative(process.cwd(), target)}, its SHA-256 in ${relative(process.cwd(), sums)}`);
} else {
  const fits = fittingPrebuild();
  if (fits.path !== undefined) console.log(`aproxy: vsock addon: using the prebuilt ${relative(dir, fits.path)} (no compiler needed)`);
  else {
    if (existsSync(prebuilds)) console.log(`aproxy: vsock addon: not using a prebuilt binary: ${fits.why}`);
    const why = build();
    if (why === undefined) console.log('aproxy: vsock addon built from source');
    else
      console.log(
        `aproxy: vsock addon not built (${why}); --vsock needs a prebuilt binary for this platform, or python3, make, a C compiler and Node headers; --unix works without it`,
      );
  }
}
