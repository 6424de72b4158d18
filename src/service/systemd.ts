/** The first file descriptor systemd passes (SD_LISTEN_FDS_START). */
export const SD_LISTEN_FDS_START = 3;

/**
 * Socket activation (sd_listen_fds(3)): when LISTEN_PID is this process,
 * LISTEN_FDS listening sockets start at fd 3: a Unix socket for serial
 * guests, a vsock socket (`ListenStream=vsock::1995`), or both. The
 * variables are removed so that child processes do not think the sockets
 * are theirs. Which family each fd is, the proxy asks the kernel.
 */
export function socketActivationFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number[] {
  if (env.LISTEN_PID === undefined || env.LISTEN_FDS === undefined) return [];
  if (env.LISTEN_PID !== String(pid)) return [];
  const count = Number(env.LISTEN_FDS);
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (!Number.isSafeInteger(count) || count <= 0) return [];
  return Array.from({ length: count }, (_, i) => SD_LISTEN_FDS_START + i);
}
