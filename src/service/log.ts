import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

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
}

/**
 * The proxy's logger (pino). Secrets never reach it by construction: the
 * proxy holds no plaintext or private key, and tokens and cookies appear
 * only as fingerprints; `redact` is a second line of defence.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const out = (options.destination as DestinationStream | undefined) ?? pino.destination({ fd: 1, sync: false });
  const pretty = options.format === 'pretty' || (options.format !== 'json' && options.destination === undefined && process.stdout.isTTY === true);
  return pino(
    {
      name: options.name ?? 'aproxy',
      level: options.level ?? 'info',
      base: { pid: process.pid },
      redact: { paths: ['cookie', 'secret', '*.cookie', '*.secret', 'headers.cookie'], censor: '[redacted]' },
    },
    pretty ? new PrettyLines(out) : out,
  );
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

export function formatLine(line: string): string {
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
