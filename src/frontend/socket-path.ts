import { constants, type Stats } from 'node:fs';
import { access, lstat, stat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { SocketInUseError, SocketPathError } from '../protocol/errors.js';

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** The private directory a socket is bound in before it is linked into place (UnixListener): `mkdtemp` adds six characters. */
export const TEMP_DIR_PREFIX = '.aproxy-';
/** The socket's name inside that directory. */
export const TEMP_SOCKET_NAME = 's';

/**
 * What binding a socket at `path` would meet, changing nothing: `free`,
 * `stale` (a socket nobody accepts on, which `force` may replace) or `live`
 * (another process accepts on it). Anything start-up would refuse throws
 * the error start-up would raise.
 */
export async function socketPathState(path: string, force: boolean): Promise<'free' | 'stale' | 'live'> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new SocketPathError(path, `Unix socket paths are limited to ${MAX_SOCKET_PATH_BYTES} bytes`);
  }
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'free';
    throw new SocketPathError(path, `cannot inspect: ${(err as Error).message}`);
  }
  if (!st.isSocket()) {
    if (!force) throw new SocketInUseError(path, 'already exists and is not a socket; remove it, or choose another path');
    throw new SocketPathError(
      path,
      `exists and is a ${st.isDirectory() ? 'directory' : 'regular file or other non-socket'}; force only replaces sockets`,
    );
  }
  // Only a socket that refuses connections is stale: a live one belongs to
  // another process, and one we cannot probe (permissions) is not ours to judge.
  const probe = await probeSocket(path);
  if (probe === 'listening') return 'live';
  if (!force) throw new SocketInUseError(path, 'is a stale socket (nothing accepts on it); set option force to replace it, or remove it');
  if (probe !== 'ECONNREFUSED')
    throw new SocketPathError(path, `force removes only a socket that refuses connections; connecting gave ${probe}`);
  return 'stale';
}

/** A live socket is never taken over nor to be removed: it cuts every VM on it off the process serving it. */
export const LIVE_SOCKET = 'another process is serving guests on this socket; stop it, or choose another path';

/** The socket's directory: it exists, this process may create entries in it, and it is shallow enough for the temporary socket path. */
export async function checkSocketDirectory(path: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${TEMP_DIR_PREFIX}XXXXXX`, TEMP_SOCKET_NAME);
  if (Buffer.byteLength(tmp) > MAX_SOCKET_PATH_BYTES) {
    throw new SocketPathError(
      path,
      `the directory is too deep: the temporary socket ${tmp} would be over ${MAX_SOCKET_PATH_BYTES} bytes; use a shorter directory`,
    );
  }
  try {
    if (!(await stat(dir)).isDirectory()) throw new SocketPathError(path, `${dir} is not a directory`);
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    if (err instanceof SocketPathError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new SocketPathError(
      path,
      code === 'ENOENT' ? `the directory ${dir} does not exist` : `cannot create the socket in ${dir}: ${code ?? (err as Error).message}`,
    );
  }
}

/**
 * Makes `path` free for a new listening socket. Without `force` any existing
 * file is an error. With `force` only a *stale* socket is removed: a regular
 * file or directory is never deleted, and a socket that another live process
 * still accepts on is never stolen.
 */
export async function prepareSocketPath(path: string, force: boolean): Promise<void> {
  const state = await socketPathState(path, force);
  if (state === 'live') throw new SocketInUseError(path, LIVE_SOCKET);
  if (state === 'stale') {
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw new SocketPathError(path, `cannot remove stale socket: ${err.message}`);
    });
  }
}

/** One connection attempt: 'listening', or the error code it failed with (ECONNREFUSED for a stale socket). */
export function probeSocket(path: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve('listening');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** True if something accepts connections on the socket at `path`. */
export async function isListening(path: string): Promise<boolean> {
  return (await probeSocket(path)) === 'listening';
}
