// The whole pure protocol layer: wire formats, schemas and crypto, no I/O.
// Code inside aproxy imports the concept it needs from its own file; this
// barrel serves the public surfaces and the tests.

export * from './base64.js';
export * from './errors.js';
export * from './framing.js';
export * from './json.js';
export * from './jwe.js';
export * from './kbs.js';
export * from './message-parsers.js';
export * from './messages.js';
export * from './report-data.js';
export * from './snp-report.js';
