import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { RawBackendOptions } from '../backends/contract.js';
import { DEFAULT_AUTH_RETRY_BUDGET_MS, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_RESOURCE_PATH } from '../backends/kbs/options.js';
import { BUILTIN_BACKEND_NAMES } from '../backends/registry.js';
import { describeError, isAproxyError } from '../protocol/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/framing.js';
import { SNP_MEASUREMENT_BYTES } from '../protocol/snp-report.js';
import {
  DEFAULT_BACKEND_CALL_TIMEOUT_MS,
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_PHASE_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_SOCKET_MODE,
  DEFAULT_GUEST_LIMITS,
  DEFAULT_LOG_BUFFER_BYTES,
  parseBackendOption,
  parseVsockPort,
  parseListenAddress,
  parseSocketMode,
  resolveGroup,
} from '../service/config.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type Logger, type LogFormat, type LogLevel } from '../service/log.js';
import type { FileListener } from '../service/config-file.js';
import { startProxy, type ListenerConfig, type ProxyConfig, type RunningProxy } from '../service/proxy.js';
import { socketActivationFds } from '../service/systemd.js';

/** Bad usage: one line on stderr, exit code 2. */
class UsageError extends Error {}

function parseHex(flag: string, text: string, bytes?: number): Buffer {
  const clean = text.startsWith('0x') ? text.slice(2) : text;
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new UsageError(`--${flag} must be hex digits (an even number of 0-9a-f)`);
  const b = Buffer.from(clean, 'hex');
  if (bytes !== undefined && b.length !== bytes) throw new UsageError(`--${flag} must be ${bytes} bytes (${bytes * 2} hex digits), got ${b.length}`);
  if (b.length === 0) throw new UsageError(`--${flag} must not be empty`);
  return b;
}

function parseVsockAddress(text: string): { cid: number; port: number } {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--vsock must be CID:PORT, e.g. 2:1995, got ${text}`);
  return { cid: Number(m[1]), port: Number(m[2]) };
}

function positiveInt(flag: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new UsageError(`--${flag} must be a positive integer, got ${String(v)}`);
  return v;
}

const protocolHelp = `attestation server protocol: ${BUILTIN_BACKEND_NAMES.join(', ')}, or a path to an ES module exporting a backend (./plugin.js)`;

function serveOptions(y: Argv) {
  return y
    .option('protocol', { type: 'string', describe: protocolHelp, demandOption: true })
    .option('url', { type: 'string', describe: 'base URL of the attestation server, e.g. http://kbs:8080 (backend option url)' })
    .option('vsock', {
      type: 'string',
      array: true,
      describe: 'serve guests over AF_VSOCK on this port (1995, what SVSM uses, when given bare); repeatable; may be combined with --unix',
    })
    .option('unix', { type: 'string', array: true, describe: 'Unix socket path QEMU connects a guest serial port (COM3) to; repeatable (one per VM)' })
    .option('force', { type: 'boolean', default: false, describe: 'replace a stale socket at --unix (never a regular file, never a live socket); no effect on --vsock' })
    .option('vsock-max-per-cid', { type: 'number', default: DEFAULT_GUEST_LIMITS.maxPerCid, describe: 'vsock connections one guest CID may hold at once (CID 1, the host, is exempt)' })
    .option('vsock-max-connections', { type: 'number', default: DEFAULT_GUEST_LIMITS.maxTotal, describe: 'vsock connections from all guests together' })
    .option('sessions-per-minute', {
      type: 'number',
      alias: 'vsock-sessions-per-minute',
      default: DEFAULT_GUEST_LIMITS.sessionsPerMinute,
      describe: 'sessions (boots) one guest may start per minute, sustained (a guest: a serial link, or a vsock CID); past it the guest is paced, its link unread',
    })
    .option('session-burst', { type: 'number', default: DEFAULT_GUEST_LIMITS.sessionBurst, describe: 'sessions one guest may start at once before pacing begins' })
    .option('backend-call-timeout-ms', {
      type: 'number',
      default: DEFAULT_BACKEND_CALL_TIMEOUT_MS,
      describe: "deadline for loading a plugin module and for the backend's create(), openSession() and close()",
    })
    .option('log-buffer-bytes', { type: 'number', default: DEFAULT_LOG_BUFFER_BYTES, describe: 'log bytes held for a slow stdout; past it new lines are dropped and counted (aproxy_log_lines_dropped_total)' })
    .option('resource', {
      type: 'string',
      describe:
        `KBS resource path <repository>/<type>/<tag> holding the secret (backend option resource; default ${DEFAULT_RESOURCE_PATH}); ` +
        'a template per guest: {host_data}, {measurement}, {report_id}, {chip_id} come from the attested report; ' +
        '{cid} (vsock) and {listener} are the host\'s say-so, not attested',
    })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'log verbosity' })
    .option('log-format', { choices: LOG_FORMATS, default: 'auto' as LogFormat, describe: 'json lines, pretty one-line events, or auto (pretty on a terminal)' })
    .option('max-frame-bytes', { type: 'number', default: DEFAULT_MAX_FRAME_BYTES, describe: 'largest frame accepted from a guest' })
    .option('frame-timeout-ms', { type: 'number', default: DEFAULT_FRAME_TIMEOUT_MS, describe: 'deadline to finish a frame once its first byte arrived (idle links have none)' })
    .option('phase-timeout-ms', { type: 'number', default: DEFAULT_PHASE_TIMEOUT_MS, describe: 'deadline for one backend phase (negotiation or attestation)' })
    .option('request-timeout-ms', { type: 'number', describe: `deadline for one HTTP exchange with the server (backend option requestTimeoutMs; default ${DEFAULT_REQUEST_TIMEOUT_MS})` })
    .option('socket-mode', { type: 'string', default: DEFAULT_SOCKET_MODE, describe: 'permissions of the socket file (0660 to let a QEMU group connect)' })
    .option('socket-group', { type: 'string', describe: 'group (name or gid) to own the socket, e.g. the group QEMU runs as' })
    .option('shutdown-grace-ms', { type: 'number', default: DEFAULT_SHUTDOWN_GRACE_MS, describe: 'on SIGINT/SIGTERM, how long sessions in flight may finish' })
    .option('ca-cert', { type: 'string', describe: 'PEM file of CA certificates to trust for an https:// --url (backend option caCert; verification is always on)' })
    .option('auth-retry-budget-ms', {
      type: 'number',
      describe: `how long /auth is retried while the KBS is down, times out or answers 5xx (backend option authRetryBudgetMs; default ${DEFAULT_AUTH_RETRY_BUDGET_MS}, 0: no retries)`,
    })
    .option('backend-option', { type: 'string', array: true, describe: "the backend's own option, key=value (repeatable); see the backend's documentation" })
    .option('metrics', { type: 'string', describe: 'serve Prometheus metrics at http://ADDR:PORT/metrics (off by default)' })
    .config('config', 'JSON file whose keys are these long flag names; flags given here override it', (path: string) => {
      if (loadConfigFile === undefined) throw new Error('configuration loader not ready');
      // The file's `backend` object and `listeners` list are not flags: kept aside for proxyConfig().
      const { backend, listeners, ...flags } = loadConfigFile(path);
      fromConfigFile = { backend, listeners };
      return flags;
    });
}

type ServeArgv = Awaited<ReturnType<typeof serveOptions>['argv']>;

/** The proxy's configuration from parsed flags (and the config file they read), checked. */
function proxyConfig(argv: ServeArgv, listenFds: number[], log: Logger): ProxyConfig {
  const listeners = (fromConfigFile.listeners ?? []).map(listenerFromFile);
  if (listenFds.length === 0 && argv.unix === undefined && argv.vsock === undefined && listeners.length === 0) {
    throw new UsageError('Missing required argument: --unix PATH or --vsock [PORT] (or a `listeners` list, or a socket from systemd)');
  }
  if (argv.metrics !== undefined) parseListenAddress(argv.metrics);
  return {
    protocol: argv.protocol,
    backendOptions: backendOptions(argv, fromConfigFile.backend),
    unix: argv.unix,
    vsock: argv.vsock === undefined ? undefined : argv.vsock.length === 0 ? [parseVsockPort(true)] : argv.vsock.map(parseVsockPort),
    listeners,
    guestLimits: {
      maxPerCid: positiveInt('vsock-max-per-cid', argv['vsock-max-per-cid']),
      maxTotal: positiveInt('vsock-max-connections', argv['vsock-max-connections']),
      sessionsPerMinute: positiveInt('sessions-per-minute', argv['sessions-per-minute']),
      sessionBurst: positiveInt('session-burst', argv['session-burst']),
    },
    backendCallTimeoutMs: positiveInt('backend-call-timeout-ms', argv['backend-call-timeout-ms']),
    listenFds,
    metrics: argv.metrics,
    force: argv.force,
    maxFrameBytes: positiveInt('max-frame-bytes', argv['max-frame-bytes']),
    frameTimeoutMs: positiveInt('frame-timeout-ms', argv['frame-timeout-ms']),
    phaseTimeoutMs: positiveInt('phase-timeout-ms', argv['phase-timeout-ms']),
    socketMode: parseSocketMode(argv['socket-mode']),
    socketGid: argv['socket-group'] === undefined ? undefined : resolveGroup(argv['socket-group']),
    log,
  };
}

/** A `listeners` entry of the config file: flag names, as everywhere in the file. */
function listenerFromFile(l: FileListener): ListenerConfig {
  const shorthands = { url: l.url, resource: l.resource, caCert: l['ca-cert'], requestTimeoutMs: l['request-timeout-ms'], authRetryBudgetMs: l['auth-retry-budget-ms'] };
  const overrides = { ...l.backend, ...Object.fromEntries(Object.entries(shorthands).filter(([, v]) => v !== undefined)) };
  return {
    name: l.name,
    unix: l.unix,
    vsock: l.vsock === undefined ? undefined : parseVsockPort(l.vsock),
    force: l.force,
    socketMode: l['socket-mode'] === undefined ? undefined : parseSocketMode(l['socket-mode']),
    socketGid: l['socket-group'] === undefined ? undefined : resolveGroup(l['socket-group']),
    protocol: l.protocol,
    backendOptions: Object.keys(overrides).length === 0 ? undefined : overrides,
    maxFrameBytes: l['max-frame-bytes'],
    frameTimeoutMs: l['frame-timeout-ms'],
    phaseTimeoutMs: l['phase-timeout-ms'],
  };
}

/** Parses the serve command line again (re-reading --config): what a reload applies. */
async function reparse(args: string[]): Promise<ServeArgv> {
  fromConfigFile = {};
  return serveOptions(yargs(args))
    .strict()
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .parseAsync() as Promise<ServeArgv>;
}

async function serve(argv: ServeArgv, args: string[]): Promise<void> {
  const listenFds = socketActivationFds();
  const log = createLogger({ level: argv['log-level'] as LogLevel, format: argv['log-format'] as LogFormat, bufferBytes: positiveInt('log-buffer-bytes', argv['log-buffer-bytes']) });
  const graceMs = nonNegativeInt('shutdown-grace-ms', argv['shutdown-grace-ms']);
  const config = proxyConfig(argv, listenFds, log);
  // Before any plugin is imported: its faults are logged, not fatal to every guest.
  (await import('../service/faults.js')).guardProcessFaults(log);
  // Signal handlers go in before the socket exists: a signal that arrives
  // while the proxy starts must stop it cleanly, not kill it by default.
  let proxy: RunningProxy | undefined;
  let pending: string | undefined;
  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    if (proxy === undefined) {
      pending = signal; // stop as soon as start-up completes, so the socket file is removed
      return;
    }
    log.info({ signal, connections: proxy.server.connectionCount, graceMs }, 'stopping: no new guests, sessions in flight may finish');
    proxy.close(graceMs).then(
      () => {
        log.info({}, 'stopped');
        log.flush();
        process.exitCode = 0;
      },
      (err: unknown) => {
        log.error({ err: describeError(err) }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // SIGHUP re-reads the configuration (the same command line, the --config
  // file anew) and applies it; a bad one is refused whole and the running one
  // stays. Logging and metrics settings need a restart.
  process.on('SIGHUP', () => {
    const running = proxy;
    if (running === undefined) return;
    if (argv.config === undefined) {
      log.warn({ signal: 'SIGHUP' }, 'SIGHUP: no --config file, so nothing to reload (flags need a restart)');
      return;
    }
    running
      .reload(async () => proxyConfig(await reparse(args), listenFds, log))
      .then(
        (r) => log.info({ signal: 'SIGHUP', ...r }, `configuration reloaded: ${r.added.length} listeners added, ${r.removed.length} removed, ${r.changed.length} changed`),
        (err: unknown) => log.error({ signal: 'SIGHUP', err: { message: describeError(err) } }, `configuration reload refused, the running configuration stays: ${describeError(err)}`),
      );
  });
  proxy = await startProxy(config);
  if (pending !== undefined) {
    signals--;
    stop(pending);
  }
}

/**
 * The backend's options: the config file's `backend` object, then
 * `--backend-option key=value`, then the shorthand flags, later ones winning.
 */
function backendOptions(
  argv: {
    'backend-option'?: string[];
  url?: string;
  resource?: string;
  'ca-cert'?: string;
    'request-timeout-ms'?: number;
    'auth-retry-budget-ms'?: number;
  },
  fromFile: RawBackendOptions = {},
): RawBackendOptions {
  const shorthands = {
    url: argv.url,
    resource: argv.resource,
    caCert: argv['ca-cert'],
    requestTimeoutMs: argv['request-timeout-ms'],
    authRetryBudgetMs: argv['auth-retry-budget-ms'],
  };
  return {
    ...fromFile,
    ...Object.fromEntries((argv['backend-option'] ?? []).map(parseBackendOption)),
    ...Object.fromEntries(Object.entries(shorthands).filter(([, v]) => v !== undefined)),
  };
}

function nonNegativeInt(flag: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new UsageError(`--${flag} must be a non-negative integer, got ${String(v)}`);
  return v;
}

function readInput(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${path}: ${(err as Error).message}`);
  }
}

const bigintSafe = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v);

/** The config file's `backend` object and `listeners` list, when --config gave them. */
let fromConfigFile: { backend?: RawBackendOptions; listeners?: FileListener[] } = {};

/** Set before parsing when --config is present (it validates with zod, which the rest of start-up does not need). */
let loadConfigFile: typeof import('../service/config-file.js').loadConfigFile | undefined;

export async function main(args: string[] = hideBin(process.argv)): Promise<void> {
  // The config file's schema needs zod, which nothing else before the socket does.
  if (args.some((a) => a === '--config' || a.startsWith('--config='))) loadConfigFile = (await import('../service/config-file.js')).loadConfigFile;
  const cli = yargs(args)
    .scriptName('aproxy')
    .usage(
      '$0 --protocol kbs --url URL --vsock\n$0 --protocol kbs --url URL --unix PATH [--force]\n\n' +
        'Attestation proxy between COCONUT-SVSM guests (vsock port 1995, or serial COM3 over a Unix socket) and an attestation server.\n' +
        "A vsock guest's CID in logs and limits is the host kernel's claim about the connecting VM, not attested.",
    )
    .command('$0', 'run the proxy', serveOptions, (argv) => serve(argv, args))
    .command(
      ['test-kbs', 'kbs-test-server'],
      "run aproxy's own KBS 0.4.0 test server (per-session state and strict checks; pair it with --protocol kbs)",
      (y) =>
        y
          .option('measurement', { type: 'string', demandOption: true, describe: `expected launch measurement, ${SNP_MEASUREMENT_BYTES * 2} hex digits` })
          .option('secret', { type: 'string', demandOption: true, describe: 'secret to release, hex' })
          .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
          .option('port', { type: 'number', default: 8080, describe: 'TCP port (0 picks a free one)' })
          .option('resource', { type: 'string', default: DEFAULT_RESOURCE_PATH, describe: 'resource path that holds the secret' })
          .option('reuse-jwe-per-key', { type: 'boolean', default: false, describe: 'benchmarks: encrypt once per guest key (all checks still run per session)' }),
      async (argv) => {
        const { TestKbs } = await import('../testkit/test-kbs.js');
        const kbs = new TestKbs({
          measurement: parseHex('measurement', argv.measurement, SNP_MEASUREMENT_BYTES),
          secret: parseHex('secret', argv.secret),
          host: argv.host,
          port: argv.port,
          resource: argv.resource,
          reuseJwePerKey: argv['reuse-jwe-per-key'],
          log: (line) => console.log(line),
        });
        const url = await kbs.start();
        console.log(`test KBS listening on ${url} (resource ${argv.resource})`);
        const stop = () => void kbs.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      },
    )
    .command(
      'simulate-guest',
      'act as SVSM guests: attest through the proxy and decrypt the secret',
      (y) =>
        y
          .option('unix', { type: 'string', describe: 'proxy socket path (as QEMU connects COM3)' })
          .option('vsock', { type: 'string', describe: 'proxy vsock address CID:PORT (as SVSM connects, e.g. 2:1995 from a guest)' })
          .option('measurement', { type: 'string', demandOption: true, describe: `launch measurement to report, ${SNP_MEASUREMENT_BYTES * 2} hex digits` })
          .option('expect-secret', { type: 'string', describe: 'hex secret the guest must decrypt' })
          .option('sessions', { type: 'number', default: 1, describe: 'number of boots' })
          .option('concurrency', { type: 'number', default: 1, describe: 'links open at once' })
          .option('host-data', { type: 'string', describe: 'HOST_DATA for the report, 64 hex digits (what QEMU host-data= sets per VM)' })
          .option('answer-timeout-ms', { type: 'number', default: 30_000, describe: 'how long to wait for each answer before reporting a timeout' })
          .conflicts('unix', 'vsock')
          .check((a) => {
            if (a.unix === undefined && a.vsock === undefined) throw new UsageError('simulate-guest needs --unix PATH or --vsock CID:PORT');
            return true;
          }),
      async (argv) => {
        const { runGuestFleet } = await import('../testkit/guest-simulator.js');
        const summary = await runGuestFleet({
          address: argv.vsock === undefined ? (argv.unix as string) : parseVsockAddress(argv.vsock),
          measurement: parseHex('measurement', argv.measurement, SNP_MEASUREMENT_BYTES),
          expectSecret: argv['expect-secret'] === undefined ? undefined : parseHex('expect-secret', argv['expect-secret']),
          sessions: positiveInt('sessions', argv.sessions),
          concurrency: positiveInt('concurrency', argv.concurrency),
          answerTimeoutMs: positiveInt('answer-timeout-ms', argv['answer-timeout-ms']),
          hostData: argv['host-data'] === undefined ? undefined : parseHex('host-data', argv['host-data'], 32),
        });
        const ms = (n: number) => n.toFixed(1);
        console.log(
          `${summary.succeeded}/${summary.sessions} sessions succeeded in ${ms(summary.elapsedMs)} ms ` +
            `(${((summary.sessions * 1000) / summary.elapsedMs).toFixed(1)}/s; latency p50 ${ms(summary.latencyMs.p50)} ms, ` +
            `p95 ${ms(summary.latencyMs.p95)} ms, p99 ${ms(summary.latencyMs.p99)} ms)` +
            (argv['expect-secret'] === undefined ? '' : '; every decrypted secret was checked against --expect-secret'),
        );
        for (const e of [...new Set(summary.errors)].slice(0, 10)) console.log(`error: ${e}`);
        process.exitCode = summary.failed === 0 ? 0 : 1;
      },
    )
    .command(
      'qemu-args',
      'print the QEMU arguments that connect a guest to the proxy: a vsock device (--vsock CID) or COM3 on the socket (--unix PATH)',
      (y) =>
        y
          .option('vsock', { type: 'number', describe: "the guest's vsock CID (3 or above, unique on the host)" })
          .option('vsock-device', { choices: ['mmio', 'pci'] as const, default: 'mmio' as const, describe: 'vhost-vsock-device (SVSM, as launch_guest.sh) or vhost-vsock-pci' })
          .option('unix', { type: 'string', describe: 'proxy socket path for COM3 (COM1/COM2 untouched)' })
          .option('reconnect-ms', { type: 'number', default: 1000, describe: 'how often QEMU retries while no proxy listens' })
          .option('qemu-version', { type: 'string', describe: 'target QEMU version (before 9.2 the option is reconnect=SECONDS)' })
          .check((a) => {
            if (a.unix === undefined && a.vsock === undefined) throw new UsageError('qemu-args needs --vsock CID or --unix PATH');
            return true;
          }),
      async (argv) => {
        const { qemuSerialArgs, qemuVsockArgs, shellJoin } = await import('../tools/qemu-args.js');
        const args: string[] = [];
        try {
          if (argv.vsock !== undefined) args.push(...qemuVsockArgs({ cid: argv.vsock, device: argv['vsock-device'] }));
        } catch (err) {
          throw new UsageError(`--vsock: ${(err as Error).message}`);
        }
        try {
          if (argv.unix !== undefined) {
            args.push(...qemuSerialArgs({ unix: argv.unix, reconnectMs: positiveInt('reconnect-ms', argv['reconnect-ms']), qemuVersion: argv['qemu-version'] }));
          }
        } catch (err) {
          throw new UsageError(`--qemu-version: ${(err as Error).message}`);
        }
        console.log(shellJoin(args));
      },
    )
    .command(
      'inspect-report <file>',
      'print a parsed SEV-SNP attestation report (raw, hex or base64; - for stdin)',
      (y) => y.positional('file', { type: 'string', demandOption: true, describe: 'report file, or - for standard input' }),
      async (argv) => {
        const { inspectReport } = await import('../tools/inspect.js');
        const input = argv.file === '-' ? readFileSync(0) : readInput(argv.file);
        for (const line of inspectReport(input)) console.log(line);
      },
    )
    .command(
      'inspect-token <token>',
      'decode a JWT or CWT attestation token without verifying it (- for stdin)',
      (y) => y.positional('token', { type: 'string', demandOption: true, describe: 'the token, or - for standard input' }),
      async (argv) => {
        const { inspectToken } = await import('../tools/inspect.js');
        const token = argv.token === '-' ? readFileSync(0, 'utf8') : argv.token;
        const d = inspectToken(token);
        console.log(`${d.kind} (not verified)`);
        console.log(`header: ${JSON.stringify(d.header, bigintSafe, 2)}`);
        console.log(`claims: ${JSON.stringify(d.claims, bigintSafe, 2)}`);
        console.log(`signature: ${d.signatureBytes} bytes`);
      },
    )
    .command('demo', 'self-contained demo: test KBS, proxy and one simulated guest, no server needed', {}, async () => {
      const { runDemo } = await import('../testkit/demo.js');
      process.exitCode = await runDemo();
    })
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  try {
    await cli.parseAsync();
  } catch (err) {
    if (err instanceof UsageError || (err instanceof Error && err.name === 'YError') || (isAproxyError(err) && (err.code === 'CONFIG' || err.code === 'PLUGIN_INVALID'))) {
      console.error(`aproxy: ${err.message.split('\n')[0]} (see aproxy --help)`);
      process.exit(2);
    }
    console.error(`aproxy: ${describeError(err)}`);
    process.exit(1);
  }
}
