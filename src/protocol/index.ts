// The whole pure protocol layer: wire formats, schemas and crypto, no I/O.
// Code inside aproxy imports the concept it needs from its own file; this
// barrel serves the public surfaces and the tests.
export * from './errors.js';
export * from './base64.js';
export * from './json.js';
export * from './framing.js';
export * from './messages.js';
export * from './message-parsers.js';
export * from './kbs.js';
export * from './report-data.js';
export * from './snp-report.js';
export * from './jwe.js';
