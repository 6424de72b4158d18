// Plain constants, importable without loading any schema library.
export const KBS_PROTOCOL_VERSION = '0.4.0';
export const KBS_COOKIE_NAME = 'kbs-session-id';
export const DEFAULT_RESOURCE_PATH = 'default/sample/test';
