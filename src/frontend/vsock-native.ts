import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';
import { VsockUnavailableError } from '../protocol/errors.js';

/**
 * AF_VSOCK for Node, in two halves. Node cannot create a vsock socket or
 * read a vsock peer address, so a small N-API addon (native/vsock, built at
 * `npm ci`) does those three system calls. Everything else, reading and
 * writing streams with backpressure, is libuv's: a vsock fd behaves as a
 * stream socket, and libuv's TCP handle serves it once `open(fd)` is called
 * on one (net.Socket({ fd }) refuses it: libuv only knows inet and unix).
 */

interface VsockAddon {
  listen(port: number, backlog: number): number;
  connect(cid: number, port: number): number;
  peerCid(fd: number): number;
  describe(fd: number): { family: string | number; stream: boolean; listening: boolean; port?: number };
  close(fd: number): void;
}

/** libuv's TCP handle class (Node's internal `tcp_wrap`), the one that opens an fd as a stream. */
interface TcpHandle {
  open(fd: number): number;
  readonly fd: number;
}
interface TcpWrap {
  TCP: new (type: number) => TcpHandle;
  constants: { SOCKET: number; SERVER: number };
}

/** Well-known context ids (linux/vm_sockets.h). */
export const VMADDR_CID_LOCAL = 1;
/** Where SVSM connects: libaproxy::ATTEST_DEFAULT_VSOCK_PORT. */
export const DEFAULT_VSOCK_PORT = 1995;

/** Where the addon lives: built here from source (build/Release), or prebuilt in the package (prebuilds/linux-x64). */
const ADDON_DIR = join(PACKAGE_ROOT, 'native', 'vsock');

let loaded: { addon: VsockAddon; tcp: TcpWrap } | undefined;

/** The addon binary this process would load (node-gyp-build's choice: a local build first, then a fitting prebuild), if any. */
export function vsockAddonPath(): string | undefined {
  try {
    const nodeGypBuild = createRequire(import.meta.url)('node-gyp-build') as { path(dir: string): string };
    return nodeGypBuild.path(ADDON_DIR);
  } catch {
    return undefined;
  }
}

/** The addon and the TCP handle class, or a VsockUnavailableError saying why and what to do. */
export function vsockSupport(): { addon: VsockAddon; tcp: TcpWrap } {
  if (loaded) return loaded;
  if (process.platform !== 'linux') throw new VsockUnavailableError('AF_VSOCK exists only on Linux');
  const path = vsockAddonPath();
  if (path === undefined) {
    throw new VsockUnavailableError(
      `no vsock addon for linux-${process.arch}: the package has no prebuilt binary for it and none was built at install (that needs python3, make, a C compiler and Node headers): install them and run \`npm rebuild aproxy\`, or serve serial guests (option unix)`,
    );
  }
  let addon: VsockAddon;
  try {
    addon = createRequire(import.meta.url)(path) as VsockAddon;
  } catch (err) {
    throw new VsockUnavailableError(`the vsock addon does not load (${(err as Error).message}): run \`npm rebuild aproxy\``);
  }
  let tcp: TcpWrap;
  try {
    // Deprecated (DEP0111, a warning only under --pending-deprecation) but the
    // only way to reach tcp_wrap; the vsock test suite fails if a Node
    // upgrade takes it away.
    tcp = (process as unknown as { binding(name: string): TcpWrap }).binding('tcp_wrap');
  } catch (err) {
    throw new VsockUnavailableError(
      `this Node.js does not expose its TCP handle (${(err as Error).message}); vsock needs Node 20–26 without --permission`,
    );
  }
  loaded = { addon, tcp };
  return loaded;
}

/** A libuv stream handle on `fd`, for `net.Server.listen(handle)` or `new net.Socket({ handle })`. */
export function streamHandle(fd: number, kind: 'server' | 'socket'): TcpHandle {
  const { tcp, addon } = vsockSupport();
  const handle = new tcp.TCP(kind === 'server' ? tcp.constants.SERVER : tcp.constants.SOCKET);
  const rc = handle.open(fd);
  if (rc !== 0) {
    addon.close(fd);
    throw new VsockUnavailableError(`libuv could not open the vsock socket (error ${rc})`);
  }
  return handle;
}

/** The peer context id of an accepted vsock socket, or undefined if the kernel will not say. */
export function peerCidOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return vsockSupport().addon.peerCid(fd);
  } catch {
    return undefined;
  }
}

/** What the kernel says an inherited fd is; undefined when the addon is not there to ask. */
export function describeSocket(fd: number): { family: string | number; stream: boolean; listening: boolean } | undefined {
  let support: ReturnType<typeof vsockSupport>;
  try {
    support = vsockSupport();
  } catch {
    return undefined;
  }
  return support.addon.describe(fd);
}

/** A client connection to `cid:port`, as an ordinary net.Socket (the guest simulator's side). */
export function connectVsock(cid: number, port: number): Socket {
  const { addon } = vsockSupport();
  const fd = addon.connect(cid, port);
  return new Socket({ handle: streamHandle(fd, 'socket') } as unknown as ConstructorParameters<typeof Socket>[0]);
}
