// The whole pure protocol layer: wire formats, schemas and crypto, no I/O.
// Code inside aproxy and the public surfaces import the concept they need
// from its own file; this barrel serves the tests, the test kit and the
// operator tools.

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
