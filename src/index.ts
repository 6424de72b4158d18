// `aproxy`: run a proxy. The other surfaces are `aproxy/plugin` (writing a
// backend), `aproxy/jwe` (JWE and P-521 helpers for backends and tests) and
// `aproxy/testing` (test KBS, simulated guests, conformance checks).
export { startProxy, redactUrl, type ProxyConfig, type RunningProxy } from './service/proxy.js';
export { createLogger, LOG_LEVELS, LOG_FORMATS, type Logger, type LogLevel, type LogFormat, type LoggerOptions } from './service/log.js';
export {
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_PHASE_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
} from './service/config.js';
export { DEFAULT_MAX_FRAME_BYTES } from './protocol/framing.js';
export type { ProxyServer } from './frontend/server.js';
export type { SessionOutcome } from './frontend/session.js';
export type { GuestPeer } from './frontend/transport.js';
export type { BackendRequestEvent, RawBackendOptions } from './backends/contract.js';
export { BUILTIN_BACKEND_NAMES } from './backends/registry.js';
export { AproxyError, isAproxyError, describeError, ERROR_CODES, type AproxyErrorCode } from './protocol/errors.js';
