import type { Argv } from 'yargs';
import { describeError } from '../protocol/errors.js';
import { loadSettings } from '../service/config/load.js';
import { needsRestart } from '../service/config/resolve.js';
import type { Settings } from '../service/config/types.js';
import { createLogger, type Logger } from '../service/log.js';
import { startProxy } from '../service/proxy.js';
import type { RunningProxy } from '../service/running-proxy.js';
import { socketActivationFds } from '../service/systemd.js';
import { serveFlags } from './serve-flags.js';

export const command = '$0';
export const describe = 'run the proxy';
export const builder = <T>(y: Argv<T>) => serveFlags(y);

export async function handler(flags: Readonly<Record<string, unknown>>): Promise<void> {
  const listenFds = socketActivationFds();
  let settings = loadSettings(flags, listenFds);
  const { logLevel, logFormat, logBufferBytes, shutdownGraceMs } = settings.process;
  const log = createLogger({ level: logLevel, format: logFormat, bufferBytes: logBufferBytes });
  // Before any plugin is imported: its faults are logged, not fatal to every guest.
  (await import('../service/faults.js')).guardProcessFaults(log);
  const lifecycle = new Lifecycle(log, shutdownGraceMs);
  // SIGHUP re-reads the configuration (the same flags, the config file anew)
  // and applies it; a bad one is refused whole and the running one stays.
  process.on('SIGHUP', () => {
    const running = lifecycle.proxy;
    if (running === undefined) return;
    if (settings.process.config === undefined) {
      log.warn({ signal: 'SIGHUP' }, 'SIGHUP: no --config file, so nothing to reload (flags need a restart)');
      return;
    }
    let next: Settings;
    running
      .reload(async () => {
        next = loadSettings(flags, listenFds);
        return { ...next.config, log };
      })
      .then(
        (r) => {
          const restart = needsRestart(settings, next);
          settings = next;
          log.info(
            { signal: 'SIGHUP', ...r },
            `configuration reloaded: ${r.added.length} listeners added, ${r.removed.length} removed, ${r.changed.length} changed`,
          );
          if (restart.length > 0)
            log.warn({ signal: 'SIGHUP', options: restart }, `changed options that only a restart applies: ${restart.join(', ')}`);
        },
        (err: unknown) =>
          log.error(
            { signal: 'SIGHUP', err: { message: describeError(err) } },
            `configuration reload refused, the running configuration stays: ${describeError(err)}`,
          ),
      );
  });
  lifecycle.started(await startProxy({ ...settings.config, log }));
}

/**
 * SIGINT and SIGTERM, installed before the sockets exist: a signal that
 * arrives while the proxy starts stops it cleanly once it has started (so
 * the socket files are removed), and a second signal exits at once.
 */
class Lifecycle {
  proxy: RunningProxy | undefined;
  private pending: string | undefined;
  private signals = 0;

  constructor(
    private readonly log: Logger,
    private readonly graceMs: number,
  ) {
    process.on('SIGINT', () => this.stop('SIGINT'));
    process.on('SIGTERM', () => this.stop('SIGTERM'));
  }

  started(proxy: RunningProxy): void {
    this.proxy = proxy;
    if (this.pending !== undefined) {
      this.signals--;
      this.stop(this.pending);
    }
  }

  private stop(signal: string): void {
    const { log, graceMs } = this;
    if (++this.signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    const proxy = this.proxy;
    if (proxy === undefined) {
      this.pending = signal;
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
  }
}
