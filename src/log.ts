import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = LevelWithSilent;

export interface LoggerOptions {
  readonly level?: LogLevel;
  /** Where JSON lines go; stdout when omitted. */
  readonly destination?: DestinationStream | NodeJS.WritableStream;
  readonly name?: string;
}

/**
 * JSON-lines logger. Secrets never reach it by construction (the proxy never
 * holds plaintext or private keys); `redact` is a second line of defence for
 * fields that may carry session material.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? 'aproxy',
      level: options.level ?? 'info',
      base: { pid: process.pid },
      redact: { paths: ['cookie', 'token', 'secret', '*.cookie', '*.token', '*.secret'], censor: '[redacted]' },
    },
    (options.destination as DestinationStream | undefined) ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A short, non-reversible fingerprint for correlating tokens or cookies in logs. */
export { fingerprint } from './fingerprint.js';
