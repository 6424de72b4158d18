// The package as an operator installs it: a tarball with a prebuilt vsock
// addon, installed on a host with no C compiler, no make and no python.
import assert from 'node:assert/strict';
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../../scripts/processes.js';
import { tempDir } from '../support/harness.js';

const root = REPO_ROOT;
/** npm itself, run by this Node: the npm that runs `npm test` names itself in npm_execpath. */
const npmCli = process.env.npm_execpath ?? join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
const nodeGyp = process.env.npm_config_node_gyp ?? join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const hasCompiler = spawnSync('sh', ['-c', 'command -v cc && command -v make && command -v python3'], { encoding: 'utf8' }).status === 0;
const skip =
  process.platform !== 'linux' || process.arch !== 'x64'
    ? 'the prebuilt addon is for linux-x64'
    : !existsSync(npmCli) || !existsSync(nodeGyp)
      ? `npm or its node-gyp not found (${npmCli}, ${nodeGyp})`
      : !hasCompiler
        ? 'building the prebuild needs cc, make and python3 here (the install under test then runs without them)'
        : false;

function run(cmd: string, args: string[], o: SpawnSyncOptions): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...o });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}:\n${String(r.stdout)}\n${String(r.stderr)}`);
  return `${String(r.stdout)}${String(r.stderr)}`;
}

/** What the tarball must hold, derived from the sources: `files` in package.json declares it, this checks it. */
function declaredContents(pkg: string): string[] {
  const tracked = run('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root })
    .split('\n')
    .filter((f) => f !== '' && existsSync(join(pkg, f)));
  const compiled = tracked
    .filter((f) => /^(src|examples)\/.*\.ts$/.test(f) && !f.endsWith('.d.ts'))
    .flatMap((f) => ['.js', '.js.map', '.d.ts'].map((ext) => `dist/${f.replace(/\.ts$/, ext)}`));
  // The bundle bin/aproxy runs: whatever outputs its build recorded (scripts/bundle.mjs).
  const meta = JSON.parse(readFileSync(join(pkg, 'dist', 'bundle', 'meta.json'), 'utf8')) as { outputs: Record<string, unknown> };
  const bundled = [...Object.keys(meta.outputs), 'dist/bundle/meta.json'];
  const shipped = tracked.filter((f) => /^(bin|contrib|docs)\//.test(f) || f === 'README.md' || f === 'package.json');
  const native = ['native/vsock/vsock.c', 'native/vsock/binding.gyp', 'scripts/build-native.mjs'];
  const prebuilt = ['native/vsock/prebuilds/SHA256SUMS', 'native/vsock/prebuilds/linux-x64/vsock.napi.glibc.node'];
  return [...compiled, ...bundled, ...shipped, ...native, ...prebuilt].map((f) => `package/${f}`).sort();
}

test('npm pack ships exactly the declared files, whatever lies around (a fresh build, one stripped prebuild with its checksum); the tarball installs with no compiler on PATH and loads its prebuild', {
  skip,
}, async (t) => {
  const work = await tempDir(t);
  // A checkout with what a developer's tree collects: a compiled file whose source is gone, a binary someone dropped in.
  const stage = join(work, 'checkout');
  for (const f of run('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root }).split('\n')) {
    if (f === '' || !existsSync(join(root, f))) continue;
    mkdirSync(dirname(join(stage, f)), { recursive: true });
    copyFileSync(join(root, f), join(stage, f));
  }
  symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'));
  mkdirSync(join(stage, 'dist', 'src'), { recursive: true });
  writeFileSync(join(stage, 'dist', 'src', 'removed-module.js'), 'export {};\n');
  mkdirSync(join(stage, 'dist', 'bundle'), { recursive: true });
  writeFileSync(join(stage, 'dist', 'bundle', 'chunk-FROM-AN-OLD-BUILD.js'), 'export {};\n');
  mkdirSync(join(stage, 'native', 'vsock', 'prebuilds', 'linux-arm64'), { recursive: true });
  writeFileSync(join(stage, 'native', 'vsock', 'prebuilds', 'linux-arm64', 'evil.node'), 'planted');
  writeFileSync(join(stage, 'native', 'vsock', 'prebuilds', 'linux-arm64', 'vsock.napi.glibc.node'), 'planted');
  // npm pack as a maintainer runs it, lifecycle scripts included (prepare: a clean build; prepack: the prebuild).
  const packed = join(work, 'packed');
  mkdirSync(packed);
  run(process.execPath, [npmCli, 'pack', '--pack-destination', packed], {
    cwd: stage,
    env: { ...process.env, npm_config_node_gyp: nodeGyp },
  });
  const tarball = join(packed, readdirSync(packed).find((f) => f.endsWith('.tgz')) as string);
  const listing = run('tar', ['tzf', tarball], {}).trim().split('\n').sort();
  assert.deepEqual(listing, declaredContents(stage), 'the tarball holds the declared files and nothing else');

  const unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  run('tar', ['xzf', tarball, '-C', unpacked], {});
  const prebuilds = join(unpacked, 'package', 'native', 'vsock', 'prebuilds');
  assert.doesNotMatch(run('readelf', ['-S', join(prebuilds, 'linux-x64', 'vsock.napi.glibc.node')], {}), /\.symtab|\.debug_/, 'stripped');
  assert.equal(run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: prebuilds }).trim(), 'linux-x64/vsock.napi.glibc.node: OK');
  // A host without a toolchain: PATH holds node and nothing else.
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  // The rest of the environment stays (npm's registry and CA settings); only the tools go.
  const env = { ...process.env, PATH: bin };
  assert.notEqual(
    spawnSync('/bin/sh', ['-c', 'command -v cc || command -v gcc || command -v make || command -v python3'], { env }).status,
    0,
    'no compiler on the PATH',
  );
  const prefix = join(work, 'prefix');
  // The dependencies' tarballs come from npm's cache, which `npm ci` filled; their
  // metadata from the registry (npm ci never needed it), as on an operator's host.
  const out = run(
    process.execPath,
    [
      npmCli,
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--foreground-scripts',
      '--script-shell=/bin/sh',
      '--prefix',
      prefix,
      tarball,
    ],
    { env },
  );
  assert.match(out, /aproxy: vsock addon: using the prebuilt prebuilds\/linux-x64\/vsock\.napi\.glibc\.node \(no compiler needed\)/);

  const installed = join(prefix, 'node_modules', 'aproxy');
  assert.equal(existsSync(join(installed, 'native', 'vsock', 'build')), false, 'nothing was compiled');
  const probe = `
    import { createServer } from 'node:net';
    const m = await import(${JSON.stringify(join(installed, 'dist', 'src', 'frontend', 'vsock-native.js'))});
    const { addon } = m.vsockSupport();
    const server = createServer().listen(${JSON.stringify(join(work, 'probe.sock'))});
    await new Promise((r) => server.once('listening', r));
    console.log(JSON.stringify({ path: m.vsockAddonPath(), socket: addon.describe(server._handle.fd) }));
    server.close();
  `;
  const loaded = JSON.parse(run(join(bin, 'node'), ['--input-type=module', '-e', probe], { env }).trim()) as {
    path: string;
    socket: { family: string; stream: boolean; listening: boolean };
  };
  assert.equal(loaded.path, join(installed, 'native', 'vsock', 'prebuilds', 'linux-x64', 'vsock.napi.glibc.node'));
  assert.deepEqual([loaded.socket.stream, loaded.socket.listening], [true, true], 'the addon answers: it describes a listening socket');
  // The installed command runs from its bundle.
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(run(join(bin, 'node'), [join(installed, 'bin', 'aproxy'), '--version'], { env }).trim(), version);
});

test('the install refuses a prebuilt addon that does not match its recorded checksum, and says so', { skip }, async (t) => {
  const pkg = join(await tempDir(t), 'package');
  const addonDir = join(pkg, 'native', 'vsock');
  mkdirSync(join(addonDir, 'prebuilds', 'linux-x64'), { recursive: true });
  mkdirSync(join(pkg, 'scripts'), { recursive: true });
  copyFileSync(join(root, 'scripts', 'build-native.mjs'), join(pkg, 'scripts', 'build-native.mjs'));
  symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'));
  const binary = join(addonDir, 'prebuilds', 'linux-x64', 'vsock.napi.glibc.node');
  writeFileSync(binary, 'not the binary the package recorded');
  writeFileSync(join(addonDir, 'prebuilds', 'SHA256SUMS'), `${'0'.repeat(64)}  linux-x64/vsock.napi.glibc.node\n`);
  // No node-gyp: what the install does next is not the question here.
  const env = { ...process.env, npm_config_node_gyp: join(pkg, 'no-node-gyp') };
  const out = run(process.execPath, [join(pkg, 'scripts', 'build-native.mjs')], { cwd: pkg, env });
  assert.match(
    out,
    /not using a prebuilt binary: prebuilds\/linux-x64\/vsock\.napi\.glibc\.node does not match its checksum in prebuilds\/SHA256SUMS/,
  );
  assert.doesNotMatch(out, /using the prebuilt/);
});
