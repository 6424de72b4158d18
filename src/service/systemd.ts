/** The first file descriptor systemd passes (SD_LISTEN_FDS_START). */
export const SD_LISTEN_FDS_START = 3;

/** A listening socket a service manager passed, with the name its unit gave it (`FileDescriptorName=`). */
export interface PassedSocket {
  readonly fd: number;
  /** systemd's name for it: `FileDescriptorName=`, by default the socket unit's name (`aproxy-vsock.socket`). */
  readonly name?: string;
}

/**
 * Socket activation (sd_listen_fds_with_names(3)): when LISTEN_PID is this
 * process, LISTEN_FDS listening sockets start at fd 3, named by
 * LISTEN_FDNAMES (colon-separated, one per fd). The variables are removed
 * so that child processes do not think the sockets are theirs. Which family
 * each fd is, the proxy asks the kernel.
 */
export function socketActivationFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): PassedSocket[] {
  if (env.LISTEN_PID === undefined || env.LISTEN_FDS === undefined) return [];
  if (env.LISTEN_PID !== String(pid)) return [];
  const count = Number(env.LISTEN_FDS);
  const names = env.LISTEN_FDNAMES?.split(':');
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (!Number.isSafeInteger(count) || count <= 0) return [];
  // Names that do not match the count are not trusted to belong to the fds.
  const named = names !== undefined && names.length === count;
  return Array.from({ length: count }, (_, i) => {
    const name = named ? names[i] : undefined;
    return { fd: SD_LISTEN_FDS_START + i, ...(name ? { name } : {}) };
  });
}
