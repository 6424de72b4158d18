// The package as an operator installs it: a tarball with a prebuilt vsock
// addon, installed on a host with no C compiler, no make and no python.
import assert from 'node:assert/strict';
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
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

test('the packed tarball carries a prebuilt vsock addon, installs with no compiler on PATH and loads it', { skip }, async (t) => {
  const work = await tempDir(t);
  // What `npm pack` does in a checkout (prepare: tsc, done for this run already; prepack: the prebuild),
  // here in a copy so this run's own dist/ and addon are left alone.
  const staged = join(work, 'staged');
  mkdirSync(staged);
  run(process.execPath, [npmCli, 'pack', '--ignore-scripts', '--pack-destination', staged], { cwd: root });
  const first = readdirSync(staged).find((f) => f.endsWith('.tgz')) as string;
  run('tar', ['xzf', join(staged, first), '-C', staged], {});
  const pkg = join(staged, 'package');
  run(process.execPath, [join(pkg, 'scripts', 'build-native.mjs'), '--prebuild'], {
    cwd: pkg,
    env: { ...process.env, npm_config_node_gyp: nodeGyp },
  });
  const packed = join(work, 'packed');
  mkdirSync(packed);
  run(process.execPath, [npmCli, 'pack', '--ignore-scripts', '--pack-destination', packed], { cwd: pkg });
  const tarball = join(packed, readdirSync(packed).find((f) => f.endsWith('.tgz')) as string);
  const listing = run('tar', ['tzf', tarball], {});
  assert.match(listing, /^package\/native\/vsock\/prebuilds\/linux-x64\/vsock\.napi\.glibc\.node$/m, 'the tarball holds the prebuild');
  assert.doesNotMatch(listing, /native\/vsock\/build\//, 'and no local build');
  assert.match(listing, /^package\/dist\/examples\/local-secret-backend\.js$/m, 'the example plugin docs/backends.md deploys');

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
});
