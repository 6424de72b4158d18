// The pure protocol layer: wire formats, schemas and crypto, no I/O.
export * from './errors.js';
export * from './base64.js';
export * from './json.js';
export * from './framing.js';
export * from './messages.js';
export * from './kbs.js';
export * from './crypto.js';
export * from './report-data.js';
export * from './snp-report.js';
