// The protocol layer without the JWE crypto (and its P-521 library): what the
// proxy itself needs. Keeping it apart keeps the proxy's start-up short; the
// test KBS and the guest simulator import crypto.js as well.
export * from './errors.js';
export * from './base64.js';
export * from './json.js';
export * from './framing.js';
export * from './messages.js';
export * from './kbs.js';
export * from './report-data.js';
export * from './snp-report.js';
