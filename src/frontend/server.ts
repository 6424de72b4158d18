import { EventEmitter, once } from 'node:events';
import { chmod, chown, mkdtemp, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { SocketPathError } from '../protocol/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/framing.js';
import type { Backend } from '../backends/types.js';
import type { Logger } from '../log.js';
import type { GuestConnection, SessionOutcome } from './connection.js';
import { prepareSocketPath } from './socket-path.js';

export interface ProxyServerOptions {
  /** The backend, or its promise: the socket may listen before the backend has loaded. */
  readonly backend: Backend | Promise<Backend>;
  readonly log: Logger;
  readonly maxFrameBytes?: number;
  /** Deadline to finish a frame once it started. Default 30 s: SVSM writes a frame in milliseconds. */
  readonly frameTimeoutMs?: number;
  /** Deadline per backend phase. Default 60 s, well under what a booting guest tolerates. */
  readonly phaseTimeoutMs?: number;
}

export interface ListenOptions {
  /** Replace a stale socket at the path. */
  readonly force?: boolean;
  /** Permission bits of the socket file; 0o600 by default. */
  readonly mode?: number;
  /** Group to own the socket (numeric gid), so a QEMU group can connect with mode 0o660. */
  readonly gid?: number;
}

export const DEFAULT_FRAME_TIMEOUT_MS = 30_000;
export const DEFAULT_PHASE_TIMEOUT_MS = 60_000;

/**
 * The guest-facing side: a Unix socket QEMU connects to, one GuestConnection
 * per QEMU process, all served concurrently. Emits 'session' (SessionOutcome)
 * after every guest boot, 'backend-request' (BackendRequestEvent) after every
 * server exchange, and 'connection' / 'disconnect' with the id.
 */
export class ProxyServer extends EventEmitter {
  private readonly server: Server;
  private readonly connections = new Map<string, GuestConnection>();
  private readonly running = new Set<Promise<void>>();
  private nextId = 1;
  private socketPath: string | undefined;
  private socketIno: number | undefined;
  private closing: Promise<void> | undefined;
  private connectionModule: Promise<typeof import('./connection.js')> | undefined;

  constructor(private readonly options: ProxyServerOptions) {
    super();
    this.server = createServer({ allowHalfOpen: false, pauseOnConnect: false }, (s) => this.accept(s));
    this.server.on('error', (err) => options.log.error({ err: { message: err.message } }, `listener error: ${err.message}`));
  }

  /**
   * Loads the session code (message schemas and their validator). It is not
   * needed to bind the socket, so it loads after, or with the first guest.
   */
  warm(): Promise<typeof import('./connection.js')> {
    this.connectionModule ??= import('./connection.js');
    return this.connectionModule;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get path(): string | undefined {
    return this.socketPath;
  }

  /**
   * Binds the socket atomically with its final permissions: it is created in
   * a private 0700 directory, chmod-ed, then renamed into place, so there is
   * no moment at which another user could connect.
   */
  async listen(path: string, o: ListenOptions = {}): Promise<void> {
    await prepareSocketPath(path, o.force ?? false);
    const dir = await mkdtemp(join(dirname(path), `.${basename(path).slice(0, 20)}.`)).catch((err: Error) => {
      throw new SocketPathError(path, `cannot create a temporary directory beside it: ${err.message}`);
    });
    const tmp = join(dir, 's');
    try {
      // A host that boots hundreds of VMs at once connects them all at once:
      // ask for a deep accept queue (the kernel caps it at net.core.somaxconn).
      this.server.listen({ path: tmp, backlog: 4096 });
      await once(this.server, 'listening');
      await chmod(tmp, o.mode ?? 0o600);
      if (o.gid !== undefined) await chown(tmp, -1, o.gid);
      await rename(tmp, path);
      this.socketIno = (await stat(path)).ino;
      this.socketPath = path;
    } catch (err) {
      if (this.server.listening) this.server.close();
      throw err instanceof SocketPathError ? err : new SocketPathError(path, `cannot listen: ${(err as Error).message}`);
    } finally {
      await rmdir(dir).catch(() => undefined);
    }
    // startupMs: time since this process started, for spotting slow starts.
    this.options.log.info({ path, mode: `0${(o.mode ?? 0o600).toString(8)}`, startupMs: Math.round(performance.now()) }, 'listening for guests');
  }

  /**
   * Serves on a socket that is already listening, passed as a file
   * descriptor (systemd socket activation). The service manager owns the
   * socket file, so close() leaves it in place.
   */
  async listenFd(fd: number): Promise<void> {
    this.server.listen({ fd });
    await once(this.server, 'listening');
    this.options.log.info({ fd }, 'listening for guests on an inherited socket');
  }

  /**
   * Stops accepting, lets sessions in flight finish for up to `graceMs`, then
   * closes every connection and removes the socket file. Idempotent.
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= this.doClose(graceMs);
    return this.closing;
  }

  private async doClose(graceMs: number): Promise<void> {
    const closed = this.server.listening ? once(this.server, 'close') : Promise.resolve();
    this.server.close();
    await this.removeSocketFile();
    // Idle connections (between sessions) go at once; busy ones close after their session or the grace period.
    for (const c of this.connections.values()) c.drain();
    if (this.running.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.running]),
        new Promise((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const c of this.connections.values()) c.destroy();
    await Promise.allSettled([...this.running]);
    await closed;
  }

  private async removeSocketFile(): Promise<void> {
    const path = this.socketPath;
    if (path === undefined) return;
    this.socketPath = undefined;
    // Only remove the file if it is still ours (not replaced by another proxy).
    const st = await stat(path).catch(() => undefined);
    if (st !== undefined && st.ino === this.socketIno) await unlink(path).catch(() => undefined);
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const id = `c${this.nextId++}`;
    // Until the session code is loaded (first guest only) the socket's bytes wait in its buffer.
    const run = this.warm().then(({ GuestConnection }) => this.serve(GuestConnection, id, socket));
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  private async serve(GuestConnection: typeof import('./connection.js').GuestConnection, id: string, socket: Socket): Promise<void> {
    let backend: Backend;
    try {
      backend = await this.options.backend;
    } catch {
      // The proxy failed to start; startProxy reports why and closes us.
      socket.destroy();
      return;
    }
    // The guest may have come and gone while the session code was loading:
    // its 'close' has fired already and nothing would ever end the connection.
    if (socket.destroyed) return;
    const log = this.options.log.child({ conn: id });
    const conn = new GuestConnection(
      id,
      socket,
      backend,
      log,
      {
        maxFrameBytes: this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
        frameTimeoutMs: this.options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS,
        phaseTimeoutMs: this.options.phaseTimeoutMs ?? DEFAULT_PHASE_TIMEOUT_MS,
      },
      {
        onOutcome: (o: SessionOutcome) => this.emit('session', o),
        onBackendRequest: (e) => this.emit('backend-request', e),
      },
    );
    this.connections.set(id, conn);
    log.debug({}, 'guest connected');
    this.emit('connection', id);
    try {
      await conn.run();
    } finally {
      this.connections.delete(id);
      log.debug({}, 'guest disconnected');
      this.emit('disconnect', id);
    }
  }
}
