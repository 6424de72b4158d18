export { ProxyServer, DEFAULT_FRAME_TIMEOUT_MS, DEFAULT_PHASE_TIMEOUT_MS, type ProxyServerOptions, type ListenOptions } from './server.js';
export { GuestConnection, type SessionOutcome, type ConnectionOptions } from './connection.js';
export { FrameReader, type FrameReaderOptions } from './frame-reader.js';
export { prepareSocketPath, isListening, MAX_SOCKET_PATH_BYTES } from './socket-path.js';
