import { ConfigError } from '../protocol/errors.js';

/** The first file descriptor systemd passes (SD_LISTEN_FDS_START). */
export const SD_LISTEN_FDS_START = 3;

/**
 * Socket activation (sd_listen_fds(3)): when LISTEN_PID is this process and
 * LISTEN_FDS is 1, the listening socket is fd 3. The variables are removed
 * so that child processes do not think the socket is theirs.
 */
export function socketActivationFd(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number | undefined {
  if (env.LISTEN_PID === undefined || env.LISTEN_FDS === undefined) return undefined;
  if (env.LISTEN_PID !== String(pid)) return undefined;
  const count = Number(env.LISTEN_FDS);
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (count === 0) return undefined;
  if (count !== 1) throw new ConfigError(`systemd passed ${count} sockets; aproxy serves exactly one (use one ListenStream= in aproxy.socket)`);
  return SD_LISTEN_FDS_START;
}
