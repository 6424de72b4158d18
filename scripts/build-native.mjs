// npm's install step: builds the optional vsock addon (native/vsock, C,
// N-API) with the node-gyp that npm ships. If it cannot be built, aproxy
// still installs and serves Unix sockets; `--vsock` then says why in one
// line. Never fails the install.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'vsock');
const gyp = process.env.npm_config_node_gyp;
if (process.platform !== 'linux') {
  console.log('aproxy: vsock addon skipped (AF_VSOCK is Linux only)');
} else if (gyp === undefined || !existsSync(gyp)) {
  console.log('aproxy: vsock addon not built: node-gyp not found (run the install through npm); --unix works without it');
} else {
  // Build against the running Node's own headers when it has them (no download: these hosts may be offline).
  const prefix = join(dirname(process.execPath), '..');
  const local = process.env.npm_config_nodedir === undefined && existsSync(join(prefix, 'include', 'node', 'node_api.h'));
  const r = spawnSync(process.execPath, [gyp, 'rebuild', ...(local ? [`--nodedir=${prefix}`] : [])], { cwd: dir, encoding: 'utf8' });
  if (r.status === 0) console.log('aproxy: vsock addon built');
  else {
    const why = `${r.stderr}\n${r.stdout}`.split('\n').find((l) => /error|not found|No such/i.test(l))?.trim() ?? `node-gyp exited ${r.status}`;
    console.log(`aproxy: vsock addon not built (${why}); --vsock needs python3, make, a C compiler and Node headers; --unix works without it`);
  }
}
