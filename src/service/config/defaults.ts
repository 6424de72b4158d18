import { VMADDR_CID_LOCAL } from '../../frontend/vsock-native.js';

/**
 * Defaults of the proxy's own options, each declared once. The option
 * table (options.ts) shows them; normalize.ts and resolve.ts apply them.
 * The backend's defaults are the backend's (backends/kbs/options.ts).
 */

/** A frame that has started must finish within this; SVSM writes a frame in milliseconds, a UART in ~200 ms. */
export const DEFAULT_FRAME_TIMEOUT_MS = 30_000;
/** Deadline per backend phase, well under what a booting guest tolerates. */
export const DEFAULT_PHASE_TIMEOUT_MS = 60_000;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
export { DEFAULT_BACKEND_CALL_TIMEOUT_MS } from '../../backends/deadline.js';
export { DEFAULT_VSOCK_PORT } from '../../frontend/vsock-native.js';
export { DEFAULT_MAX_FRAME_BYTES } from '../../protocol/framing.js';

/**
 * Guest limits. vsock admission: a guest needs one connection at a time,
 * two across a reboot. Session budget, every transport: a boot is one
 * session and a reboot takes seconds, so a rebooting SVSM never meets 10 at
 * once and 30 a minute; a flood waits 2 s a session.
 */
export const DEFAULT_GUEST_LIMITS = Object.freeze({
  maxPerCid: 4,
  maxTotal: 1024,
  sessionsPerMinute: 30,
  sessionBurst: 10,
});

/** CIDs exempt from the per-CID caps: the host's own loopback carries host processes, not guests. */
export const TRUSTED_CIDS: ReadonlySet<number> = new Set([VMADDR_CID_LOCAL]);

/** Bytes of log lines waiting for a slow stdout before new lines are dropped (and counted). */
export const DEFAULT_LOG_BUFFER_BYTES = 1024 * 1024;

/** Permission bits of a Unix socket file: the proxy's user only, until the operator opens it to QEMU's group. */
export const DEFAULT_SOCKET_MODE = 0o600;
