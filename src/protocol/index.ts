// The pure protocol layer: wire formats, schemas and crypto, no I/O.
export * from './wire.js';
export * from './crypto.js';
