import { Writable } from 'node:stream';
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';
import { DEFAULT_LOG_BUFFER_BYTES } from './config/defaults.js';
import { escapeForTerminal } from './terminal.js';

export type { Logger };
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = LevelWithSilent;
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  readonly level?: LogLevel;
  /** `json` lines, one readable `pretty` line per event, or `auto`: pretty on a terminal. */
  readonly format?: LogFormat;
  /** Where lines go; stdout when omitted. */
  readonly destination?: DestinationStream | NodeJS.WritableStream;
  readonly name?: string;
  /**
   * Bytes of log lines held while stdout is slower than the proxy (a
   * stalled journal, a full pipe). Past three quarters of it, debug and
   * info lines are dropped; past all of it, every new line. Dropped lines
   * are counted, never queued without bound, never written synchronously.
   */
  readonly bufferBytes?: number;
}

/** Lines dropped per logger because its buffer was full; read with `droppedLogLines`. */
const drops = new WeakMap<object, { lines: number }>();
/** Each stdout logger's buffer, for `exitAfterLog`. */
const buffers = new WeakMap<object, ReturnType<typeof pino.destination>>();

/**
 * Lines are written to stdout in batches: once this many bytes wait, or
 * every LOG_FLUSH_MS, whichever comes first. One write per line was a few
 * percent of the proxy's CPU per boot in a boot storm (docs/performance.md).
 * An exit, a fatal fault included, writes what waits; only a SIGKILL can
 * lose the last LOG_FLUSH_MS of lines.
 */
const LOG_BATCH_BYTES = 4096;
const LOG_FLUSH_MS = 100;

/** How long an exiting process waits for stdout to take the log's last lines (TimeoutStopSec=20s leaves room). */
export const LOG_DRAIN_MS = 3000;

/**
 * Exits with `code` once stdout has taken every line `log` holds, or after
 * LOG_DRAIN_MS if it does not (a stalled journal or pipe must not keep a
 * stopped or failed process alive; what the buffer still held is then
 * lost). Exiting without this can hang: pino writes its buffer
 * synchronously at exit, retrying a full pipe for ever.
 */
export function exitAfterLog(log: Logger, code: number): void {
  process.exitCode = code;
  const boom = buffers.get(log);
  if (boom === undefined || buffered(boom) === 0) process.exit(code);
  // 'drain' says the buffer is written; flush() starts writing what is below the batch size.
  const giveUp = setTimeout(() => {
    boom.destroy();
    process.exit(code);
  }, LOG_DRAIN_MS);
  boom.once('drain', () => {
    clearTimeout(giveUp);
    process.exit(code);
  });
  boom.flush();
}

/** Log lines `log` dropped because stdout did not keep up (0 for a logger with a caller's destination). */
export function droppedLogLines(log: object): number {
  return drops.get(log)?.lines ?? 0;
}

/**
 * The proxy's logger (pino). Secrets never reach it by construction: the
 * proxy holds no plaintext or private key, and tokens and cookies appear
 * only as fingerprints; `redact` is a second line of defence.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const counter = { lines: 0 };
  let out = options.destination as DestinationStream | undefined;
  let stdout: NodeJS.EventEmitter | undefined;
  let boom: ReturnType<typeof pino.destination> | undefined;
  const maxLength = options.bufferBytes ?? DEFAULT_LOG_BUFFER_BYTES;
  if (out === undefined) {
    // A batch is at most an eighth of the buffer, so a small log-buffer-bytes still holds several.
    const minLength = Math.min(LOG_BATCH_BYTES, Math.floor(maxLength / 8));
    boom = pino.destination({ fd: 1, sync: false, maxLength, minLength });
    stdout = boom as unknown as NodeJS.EventEmitter;
    // sonic-boom emits 'drop' with the line it could not buffer.
    stdout.on('drop', () => counter.lines++);
    out = boom;
  }
  const pretty =
    options.format === 'pretty' || (options.format !== 'json' && options.destination === undefined && process.stdout.isTTY === true);
  const formatted = pretty ? new PrettyLines(out) : out;
  const logger = pino(
    {
      name: options.name ?? 'aproxy',
      level: options.level ?? 'info',
      base: { pid: process.pid },
      redact: { paths: ['cookie', 'secret', '*.cookie', '*.secret', 'headers.cookie'], censor: '[redacted]' },
    },
    boom === undefined ? formatted : new SeverityShare(boom, formatted, maxLength, () => counter.lines++),
  );
  drops.set(logger, counter);
  if (boom !== undefined) buffers.set(logger, boom);
  // Once stdout has caught up, the log itself says how many lines it lost (and metrics count them, when on).
  let reported = 0;
  stdout?.on('drain', () => {
    if (counter.lines === reported) return;
    const dropped = counter.lines - reported;
    reported = counter.lines;
    logger.warn(
      { dropped, droppedTotal: reported },
      `${dropped} log lines were dropped while stdout did not keep up (log-buffer-bytes); aproxy_log_lines_dropped_total counts them`,
    );
  });
  return logger;
}

/** pino's level number for `warn`: lines at it and above may use the whole buffer. */
const WARN = 40;

/**
 * Stdout's buffer, shared by severity: once it is three quarters full,
 * debug and info lines are dropped and warnings and errors keep the rest.
 * A flood of routine lines then cannot push out the warning that says a
 * guest failed, as dropping only the newest line would (the older noise
 * stayed, the victim's line went). pino tells a stream that asks for it
 * each line's level.
 */
class SeverityShare {
  /** Set by pino before each write. */
  lastLevel = 0;
  private readonly routineBytes: number;
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly boom: ReturnType<typeof pino.destination>,
    private readonly sink: DestinationStream | NodeJS.WritableStream,
    maxLength: number,
    private readonly onDrop: () => void,
  ) {
    (this as Record<symbol, unknown>)[Symbol.for('pino.metadata')] = true;
    this.routineBytes = Math.floor(maxLength * 0.75);
  }

  write(line: string): boolean {
    if (this.lastLevel < WARN && buffered(this.boom) + line.length > this.routineBytes) {
      this.onDrop();
      return false;
    }
    const taken = this.sink.write(line) !== false;
    // A batch not yet full goes out within LOG_FLUSH_MS. An idle log has no timer: sonic-boom's periodicFlush writes, if only nothing, every period.
    if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        if (buffered(this.boom) > 0) this.boom.flush();
      }, LOG_FLUSH_MS);
      this.flushTimer.unref();
    }
    return taken;
  }

  flush(cb?: (err?: Error) => void): void {
    this.boom.flush(cb);
  }
}

/** Bytes sonic-boom holds unwritten (its `_len`; the tests fail if a version stops keeping it). */
function buffered(boom: object): number {
  const n = (boom as { _len?: unknown })._len;
  return typeof n === 'number' ? n : 0;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const QUIET_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'conn', 'session', 'connectionId']);

/** Turns pino's JSON lines into `HH:MM:SS.mmm LEVEL c3#2 message key=value …` for people. */
export class PrettyLines extends Writable {
  constructor(private readonly out: DestinationStream | NodeJS.WritableStream) {
    super();
  }

  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line !== '') this.out.write(`${formatLine(line)}\n`);
    }
    done();
  }
}

/** One pretty line from one pino JSON line; every character from outside is escaped. */
export function formatLine(line: string): string {
  return escapeForTerminal(formatRecord(line));
}

function formatRecord(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString().slice(11, 23) : '';
  const level = LEVEL_NAMES[Number(rec.level)] ?? String(rec.level);
  const where = rec.conn === undefined ? '' : ` ${String(rec.conn)}${rec.session === undefined ? '' : `#${String(rec.session)}`}`;
  const fields = Object.entries(rec)
    .filter(([k, v]) => !QUIET_KEYS.has(k) && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${level}${where} ${String(rec.msg ?? '')}${fields ? `  ${fields}` : ''}`;
}

/** URLs may carry credentials; logs get them without. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
