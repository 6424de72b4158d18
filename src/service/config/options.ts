import {
  DEFAULT_AUTH_RETRY_BUDGET_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_RESOURCE_PATH,
  type KbsOptions,
} from '../../backends/kbs/options.js';
import { BUILTIN_BACKEND_NAMES } from '../../backends/registry.js';
import type { GuestLimitOptions } from '../../frontend/guest-limits.js';
import { LOG_FORMATS, LOG_LEVELS } from '../log.js';
import {
  DEFAULT_BACKEND_CALL_TIMEOUT_MS,
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_GUEST_LIMITS,
  DEFAULT_LOG_BUFFER_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_PHASE_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_SOCKET_MODE,
  DEFAULT_VSOCK_PORT,
} from './defaults.js';
import type { ProcessOptions, ProxyConfig } from './types.js';

/** Where an option's value goes: a key of the type it lands in, so a wrong name does not compile. */
export type OptionTarget =
  | { readonly proxy: Exclude<keyof ProxyConfig, 'log' | 'guestLimits' | 'backendOptions'> }
  | { readonly limits: Exclude<keyof GuestLimitOptions, 'trustedCids'> }
  | { readonly process: keyof ProcessOptions }
  /** A shorthand for one of the KBS backends' options. */
  | { readonly backend: keyof KbsOptions }
  | 'backend-options';

/**
 * Every option of `aproxy` (the serve command), declared once. From this
 * table come the command-line flags (cli/serve-flags.ts), the config file's
 * keys at the top level and in `listeners` and the mapping to ProxyConfig
 * (resolve.ts), the defaults a config gets (normalize.ts), docs/cli.md (`npm run
 * docs`), and the tests that walk it.
 */
export interface OptionSpec {
  /** How a value is read and checked (values.ts, `parseValue`). */
  readonly type: 'string' | 'integer' | 'boolean' | 'choice' | 'strings' | 'ports' | 'mode' | 'group' | 'address' | 'object' | 'listeners';
  readonly help: string;
  /** Applied when neither a flag nor the file gives the option: a checked value, as parseValue returns it. */
  readonly default?: string | number | boolean;
  /** The default, in words, when it is not ours to apply (a backend's). */
  readonly defaultText?: string;
  /** `integer`: the smallest value. */
  readonly min?: number;
  /** `choice`: the values. */
  readonly choices?: readonly string[];
  /** A flag only (`config`), a file key only (`backend`, `listeners`); both when absent. */
  readonly where?: 'both' | 'flag' | 'file';
  /** May a `listeners` entry set it, for that listener only. */
  readonly listener?: boolean;
  /**
   * A file path: written in the config file, a relative one is taken from
   * the file's directory (under systemd the working directory is /); on the
   * command line, from the working directory, as a shell's.
   * `plugin`: only when the value names a module rather than a built-in.
   */
  readonly path?: 'file' | 'plugin';
  /** Where the value goes (resolve.ts). */
  readonly to: OptionTarget;
  /** Does a reload (SIGHUP) apply a change; otherwise it needs a restart, and a reload says so. */
  readonly reload: boolean;
  readonly group: 'listening' | 'attestation server' | 'guests' | 'logs and operations';
}

const ms = (what: string) => `${what} (milliseconds)`;

export const OPTIONS = {
  protocol: {
    type: 'string',
    path: 'plugin',
    listener: true,
    to: { proxy: 'protocol' },
    reload: true,
    group: 'attestation server',
    help: `attestation server protocol: ${BUILTIN_BACKEND_NAMES.join(', ')}, or a path to an ES module exporting a backend (./plugin.js); required`,
  },
  url: {
    type: 'string',
    listener: true,
    to: { backend: 'url' },
    reload: true,
    group: 'attestation server',
    help: 'base URL of the attestation server, e.g. http://kbs:8080 (backend option url)',
  },
  resource: {
    type: 'string',
    listener: true,
    to: { backend: 'resource' },
    reload: true,
    group: 'attestation server',
    defaultText: DEFAULT_RESOURCE_PATH,
    help:
      'KBS resource path <repository>/<type>/<tag> holding the secret (backend option resource); a template per guest: ' +
      "{host_data}, {measurement}, {report_id}, {chip_id} come from the attested report; {cid} (vsock) and {listener} are the host's say-so, not attested",
  },
  'ca-cert': {
    type: 'string',
    path: 'file',
    listener: true,
    to: { backend: 'caCert' },
    reload: true,
    group: 'attestation server',
    help: 'PEM file of CA certificates to trust for an https:// url (backend option caCert; verification is always on)',
  },
  'request-timeout-ms': {
    type: 'integer',
    min: 1,
    listener: true,
    to: { backend: 'requestTimeoutMs' },
    reload: true,
    group: 'attestation server',
    defaultText: String(DEFAULT_REQUEST_TIMEOUT_MS),
    help: ms('deadline for one HTTP exchange with the server (backend option requestTimeoutMs)'),
  },
  'auth-retry-budget-ms': {
    type: 'integer',
    min: 0,
    listener: true,
    to: { backend: 'authRetryBudgetMs' },
    reload: true,
    group: 'attestation server',
    defaultText: String(DEFAULT_AUTH_RETRY_BUDGET_MS),
    help: ms('how long /auth is retried while the KBS is down, times out or answers 5xx (backend option authRetryBudgetMs; 0: no retries)'),
  },
  'backend-option': {
    type: 'strings',
    to: 'backend-options',
    reload: true,
    group: 'attestation server',
    help: "the backend's own option, key=value (repeatable); see the backend's documentation",
  },
  backend: {
    type: 'object',
    where: 'file',
    listener: true,
    to: 'backend-options',
    reload: true,
    group: 'attestation server',
    help: "the backend's own options as a JSON object (what --backend-option sets, with JSON values); the shorthand options above win",
  },
  'backend-call-timeout-ms': {
    type: 'integer',
    min: 1,
    to: { proxy: 'backendCallTimeoutMs' },
    reload: false,
    group: 'attestation server',
    default: DEFAULT_BACKEND_CALL_TIMEOUT_MS,
    help: ms("deadline for loading a plugin module and for the backend's create(), openSession() and close()"),
  },
  vsock: {
    type: 'ports',
    listener: true,
    to: { proxy: 'vsock' },
    reload: true,
    group: 'listening',
    help: `serve guests over AF_VSOCK on this port (${DEFAULT_VSOCK_PORT}, what SVSM uses, when given bare or as true); repeatable; may be combined with unix`,
  },
  unix: {
    type: 'strings',
    listener: true,
    to: { proxy: 'unix' },
    reload: true,
    group: 'listening',
    help: 'Unix socket path QEMU connects a guest serial port (COM3) to; repeatable (one per VM)',
  },
  listeners: {
    type: 'listeners',
    where: 'file',
    to: { proxy: 'listeners' },
    reload: true,
    group: 'listening',
    help: 'more listeners, each {"name", one of "unix" or "vsock", and any option marked "listener"} overriding the top-level value for that listener',
  },
  force: {
    type: 'boolean',
    listener: true,
    to: { proxy: 'force' },
    reload: true,
    group: 'listening',
    default: false,
    help: 'replace a stale socket at unix (never a regular file, never a live socket); no effect on vsock',
  },
  'socket-mode': {
    type: 'mode',
    listener: true,
    to: { proxy: 'socketMode' },
    reload: true,
    group: 'listening',
    default: DEFAULT_SOCKET_MODE,
    help: 'permissions of the socket file (0660 to let a QEMU group connect)',
  },
  'socket-group': {
    type: 'group',
    listener: true,
    to: { proxy: 'socketGid' },
    reload: true,
    group: 'listening',
    help: 'group (name or gid) to own the socket file, e.g. the group QEMU runs as',
  },
  'max-frame-bytes': {
    type: 'integer',
    min: 1,
    listener: true,
    to: { proxy: 'maxFrameBytes' },
    reload: true,
    group: 'guests',
    default: DEFAULT_MAX_FRAME_BYTES,
    help: 'largest frame accepted from a guest',
  },
  'frame-timeout-ms': {
    type: 'integer',
    min: 1,
    listener: true,
    to: { proxy: 'frameTimeoutMs' },
    reload: true,
    group: 'guests',
    default: DEFAULT_FRAME_TIMEOUT_MS,
    help: ms('deadline to finish a frame once its first byte arrived (idle links have none)'),
  },
  'phase-timeout-ms': {
    type: 'integer',
    min: 1,
    listener: true,
    to: { proxy: 'phaseTimeoutMs' },
    reload: true,
    group: 'guests',
    default: DEFAULT_PHASE_TIMEOUT_MS,
    help: ms('deadline for one backend phase (negotiation or attestation)'),
  },
  'vsock-max-per-cid': {
    type: 'integer',
    min: 1,
    to: { limits: 'maxPerCid' },
    reload: false,
    group: 'guests',
    default: DEFAULT_GUEST_LIMITS.maxPerCid,
    help: 'vsock connections one guest CID may hold at once (CID 1, the host, is exempt)',
  },
  'vsock-max-connections': {
    type: 'integer',
    min: 1,
    to: { limits: 'maxTotal' },
    reload: false,
    group: 'guests',
    default: DEFAULT_GUEST_LIMITS.maxTotal,
    help: 'vsock connections from all guests together',
  },
  'sessions-per-minute': {
    type: 'integer',
    min: 1,
    to: { limits: 'sessionsPerMinute' },
    reload: false,
    group: 'guests',
    default: DEFAULT_GUEST_LIMITS.sessionsPerMinute,
    help: 'sessions (boots) one guest may start per minute, sustained (a guest: a VM, by its serial socket or its vsock CID, across reconnects); past it the guest is paced, its link unread',
  },
  'session-burst': {
    type: 'integer',
    min: 1,
    to: { limits: 'sessionBurst' },
    reload: false,
    group: 'guests',
    default: DEFAULT_GUEST_LIMITS.sessionBurst,
    help: 'sessions one guest may start at once before pacing begins',
  },
  'log-level': {
    type: 'choice',
    choices: LOG_LEVELS,
    to: { process: 'logLevel' },
    reload: false,
    group: 'logs and operations',
    default: 'info',
    help: 'log verbosity',
  },
  'log-format': {
    type: 'choice',
    choices: LOG_FORMATS,
    to: { process: 'logFormat' },
    reload: false,
    group: 'logs and operations',
    default: 'auto',
    help: 'json lines, pretty one-line events, or auto (pretty on a terminal)',
  },
  'log-buffer-bytes': {
    type: 'integer',
    min: 1,
    to: { process: 'logBufferBytes' },
    reload: false,
    group: 'logs and operations',
    default: DEFAULT_LOG_BUFFER_BYTES,
    help: 'log bytes held for a slow stdout; past three quarters of it debug and info lines are dropped, past all of it every line, and counted (aproxy_log_lines_dropped_total)',
  },
  metrics: {
    type: 'address',
    to: { proxy: 'metrics' },
    reload: false,
    group: 'logs and operations',
    help: 'serve Prometheus metrics at http://ADDR:PORT/metrics (off by default)',
  },
  'shutdown-grace-ms': {
    type: 'integer',
    min: 0,
    to: { process: 'shutdownGraceMs' },
    reload: false,
    group: 'logs and operations',
    default: DEFAULT_SHUTDOWN_GRACE_MS,
    help: ms('on SIGINT/SIGTERM, how long sessions in flight may finish'),
  },
  config: {
    type: 'string',
    where: 'flag',
    to: { process: 'config' },
    reload: false,
    group: 'logs and operations',
    help: 'JSON file whose keys are these option names; flags given with it win; SIGHUP re-reads it',
  },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;
export const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];

/** An option by name. */
export function optionNamed(name: string): OptionName | undefined {
  return Object.hasOwn(OPTIONS, name) ? (name as OptionName) : undefined;
}

/** Keys a `listeners` entry may hold besides the options marked `listener`. */
export const LISTENER_ONLY_KEYS = {
  name: "the listener's name, for logs, metrics and the {listener} template field; default: its address",
  systemd:
    'the address: the socket systemd passes under this name (FileDescriptorName= in its .socket unit, with Service=aproxy.service); the listener name defaults to it',
} as const;
