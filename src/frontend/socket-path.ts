import { connect } from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import { SocketInUseError, SocketPathError } from '../protocol/errors.js';

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Makes `path` free for a new listening socket. Without `force` any existing
 * file is an error. With `force` only a *stale* socket is removed: a regular
 * file or directory is never deleted, and a socket that another live process
 * still accepts on is never stolen.
 */
export async function prepareSocketPath(path: string, force: boolean): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new SocketPathError(path, `Unix socket paths are limited to ${MAX_SOCKET_PATH_BYTES} bytes`);
  }
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new SocketPathError(path, `cannot inspect: ${(err as Error).message}`);
  }
  if (!force) {
    throw new SocketInUseError(path, 'already exists; remove it, or set option force to replace a stale socket');
  }
  if (!st.isSocket()) {
    throw new SocketPathError(path, `exists and is a ${st.isDirectory() ? 'directory' : 'regular file or other non-socket'}; force only replaces sockets`);
  }
  // Only a socket that refuses connections is stale: a live one belongs to
  // another process, and one we cannot probe (permissions) is not ours to judge.
  const probe = await probeSocket(path);
  if (probe === 'listening') throw new SocketInUseError(path, 'another process is listening on this socket; refusing to take it over');
  if (probe !== 'ECONNREFUSED') throw new SocketPathError(path, `force removes only a socket that refuses connections; connecting gave ${probe}`);
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw new SocketPathError(path, `cannot remove stale socket: ${err.message}`);
  });
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
