// aproxy's public API: everything a backend author, an embedder or a tester imports.
export * from './protocol/index.js';
export * from './backends/index.js';
export * from './frontend/index.js';
export { startProxy, redactUrl, DEFAULT_REQUEST_TIMEOUT_MS, type ProxyConfig, type RunningProxy } from './proxy.js';
export { createLogger, fingerprint, LOG_LEVELS, type Logger, type LogLevel, type LoggerOptions } from './log.js';
export { TestKbs, type TestKbsOptions } from './tools/test-kbs.js';
export {
  SimulatedGuest,
  runGuestFleet,
  type BootOptions,
  type BootResult,
  type GuestFleetOptions,
  type GuestFleetSummary,
} from './tools/guest-simulator.js';
export { runDemo } from './tools/demo.js';
export { runConformance, type ConformanceOptions, type ConformanceReport, type ConformanceCheck } from './conformance.js';
