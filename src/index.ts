// `aproxy`: run a proxy. The other surfaces are `aproxy/plugin` (writing a
// backend), `aproxy/jwe` (JWE and P-521 helpers for backends and tests) and
// `aproxy/testing` (test KBS, simulated guests, conformance checks).

export type { BackendRequestEvent, RawBackendOptions } from './backends/contract.js';
export { BUILTIN_BACKEND_NAMES } from './backends/registry.js';
export type { ProxyServer } from './frontend/server.js';
export type { SessionOutcome } from './frontend/session.js';
export type { GuestPeer } from './frontend/transport.js';
export { AproxyError, type AproxyErrorCode, describeError, ERROR_CODES, isAproxyError } from './protocol/errors.js';
export { DEFAULT_MAX_FRAME_BYTES } from './protocol/framing.js';
export {
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_PHASE_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
} from './service/config/defaults.js';
export type { ProxyConfig } from './service/config/types.js';
export {
  createLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  redactUrl,
} from './service/log.js';
export { startProxy } from './service/proxy.js';
export type { RunningProxy } from './service/running-proxy.js';
