import type { Argv } from 'yargs';
import { describeError } from '../protocol/errors.js';
import { writeCompileCacheAfterFirstSession } from '../service/compile-cache.js';
import { loadSettings } from '../service/config/load.js';
import { needsRestart } from '../service/config/resolve.js';
import type { Settings } from '../service/config/types.js';
import { createLogger, exitAfterLog, type Logger } from '../service/log.js';
import { startProxy } from '../service/proxy.js';
import type { RunningProxy } from '../service/running-proxy.js';
import { socketActivationFds } from '../service/systemd.js';
import { takeEarlyHangups } from './early-signals.js';
import { serveFlags } from './serve-flags.js';

export const command = '$0';
export const describe = 'run the proxy';
export const builder = <T>(y: Argv<T>) => serveFlags(y);

export async function handler(flags: Readonly<Record<string, unknown>>): Promise<void> {
  const listenFds = socketActivationFds();
  const settings = loadSettings(flags, listenFds);
  const { logLevel, logFormat, logBufferBytes, shutdownGraceMs } = settings.process;
  const log = createLogger({ level: logLevel, format: logFormat, bufferBytes: logBufferBytes });
  // Before any plugin is imported: its faults are logged, not fatal to every guest.
  (await import('../service/faults.js')).guardProcessFaults(log);
  const lifecycle = new Lifecycle(log, shutdownGraceMs, settings, () => loadSettings(flags, listenFds));
  const proxy = await startProxy({ ...settings.config, log });
  writeCompileCacheAfterFirstSession(proxy.server, log);
  lifecycle.started(proxy);
}

/**
 * The process's signals, installed before the sockets exist, one state at
 * a time: starting, running, stopping. SIGINT and SIGTERM stop the proxy
 * (one that arrives while it starts stops it once it has started, so the
 * socket files are removed; a second exits at once). SIGHUP re-reads the
 * configuration (the same flags, the config file anew) and applies it, or
 * refuses it whole; one that arrives while the proxy starts is applied
 * once it has started, one that arrives while it stops is logged and not
 * applied. Every signal leaves a log line.
 */
class Lifecycle {
  private proxy: RunningProxy | undefined;
  private state: 'starting' | 'running' | 'stopping' = 'starting';
  private pendingStop: string | undefined;
  private pendingReload = false;
  private signals = 0;

  constructor(
    private readonly log: Logger,
    private readonly graceMs: number,
    private settings: Settings,
    private readonly reread: () => Settings,
  ) {
    process.on('SIGINT', () => this.stop('SIGINT'));
    process.on('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGHUP', () => this.hangup());
    if (takeEarlyHangups() > 0) this.hangup();
  }

  started(proxy: RunningProxy): void {
    this.proxy = proxy;
    if (this.pendingStop !== undefined) {
      this.signals--;
      this.stop(this.pendingStop);
      return;
    }
    this.state = 'running';
    if (this.pendingReload) {
      this.pendingReload = false;
      this.reload();
    }
  }

  private hangup(): void {
    if (this.state === 'stopping') {
      this.log.warn({ signal: 'SIGHUP' }, 'SIGHUP while stopping: the configuration is not reloaded');
    } else if (this.state === 'starting') {
      this.pendingReload = true;
      this.log.info({ signal: 'SIGHUP' }, 'SIGHUP while starting: the configuration is re-read once the proxy has started');
    } else {
      this.reload();
    }
  }

  private reload(): void {
    const { log } = this;
    const running = this.proxy as RunningProxy;
    if (this.settings.process.config === undefined) {
      log.warn({ signal: 'SIGHUP' }, 'SIGHUP: no --config file, so nothing to reload (flags need a restart)');
      return;
    }
    let next: Settings;
    running
      .reload(async () => {
        next = this.reread();
        return { ...next.config, log };
      })
      .then(
        (r) => {
          const restart = needsRestart(this.settings, next);
          this.settings = next;
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
  }

  private stop(signal: string): void {
    const { log, graceMs } = this;
    if (++this.signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      exitAfterLog(log, 1);
      return;
    }
    // From here a SIGHUP is not applied, even one that comes while the proxy still starts.
    this.state = 'stopping';
    const proxy = this.proxy;
    if (proxy === undefined) {
      this.pendingStop = signal;
      return;
    }
    log.info({ signal, connections: proxy.server.connectionCount, graceMs }, 'stopping: no new guests, sessions in flight may finish');
    proxy.close(graceMs).then(
      () => {
        log.info({}, 'stopped');
        // Not by an empty event loop: a stalled stdout or a plugin's stray timer would keep a stopped proxy alive.
        exitAfterLog(log, 0);
      },
      (err: unknown) => {
        log.error({ err: describeError(err) }, 'error while stopping');
        exitAfterLog(log, 1);
      },
    );
  }
}
