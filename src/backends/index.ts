export * from './types.js';
export { BUILTIN_BACKEND_NAMES, assertBackendDefinition, isPluginSpecifier, resolveBackend } from './registry.js';
export { kbsBackend, kbsTestBackend, KBS_TEST_MAX_HOLD_MS } from './kbs/backend.js';
export { KbsClient, cookieHeader } from './kbs/client.js';
export { Mutex } from './mutex.js';
