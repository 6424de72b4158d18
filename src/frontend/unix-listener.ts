import { once } from 'node:events';
import { chmod, chown, link, mkdtemp, rmdir, stat, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { SocketInUseError, SocketPathError } from '../protocol/errors.js';
import { checkSocketDirectory, prepareSocketPath, TEMP_DIR_PREFIX, TEMP_SOCKET_NAME } from './socket-path.js';
import { type GuestPeer, ServerListener } from './transport.js';

export interface UnixListenerOptions {
  readonly path: string;
  /** Replace a stale socket at the path. */
  readonly force: boolean;
  /** Permission bits of the socket file. */
  readonly mode: number;
  /** Group to own the socket (numeric gid), so a QEMU group can connect with mode 0o660. */
  readonly gid?: number;
  readonly name: string;
  /** Called once bound, with what an operator wants to see in the log. */
  readonly onListening?: (fields: Record<string, unknown>, message: string) => void;
}

/** A Unix socket that QEMU connects a guest's serial port to (`-serial unix:PATH`). */
export class UnixListener extends ServerListener {
  readonly transport = 'unix' as const;
  readonly name: string;
  protected readonly server = createServer({ allowHalfOpen: false, pauseOnConnect: true }, (s) => this.accept(s));
  private socketIno: number | undefined;
  private bound = false;

  constructor(private readonly options: UnixListenerOptions) {
    super();
    this.name = options.name;
  }

  get path(): string {
    return this.options.path;
  }

  /**
   * Binds the socket with its final permissions, and never over anything:
   * it is created in a private 0700 directory, chmod-ed, then hard-linked
   * into place. link(2) fails if the path exists, so a file or socket that
   * appears there after the check (another proxy started on the same path)
   * is never replaced: that start fails with SOCKET_IN_USE instead. There is
   * no moment at which another user could connect.
   */
  async listen(): Promise<void> {
    const { path, mode, gid } = this.options;
    await prepareSocketPath(path, this.options.force);
    await checkSocketDirectory(path);
    const dir = await mkdtemp(join(dirname(path), TEMP_DIR_PREFIX)).catch((err: Error) => {
      throw new SocketPathError(path, `cannot create a temporary directory beside it: ${err.message}`);
    });
    // checkSocketDirectory made sure this path fits: the kernel would silently cut an over-long one.
    const tmp = join(dir, TEMP_SOCKET_NAME);
    try {
      // A host that boots hundreds of VMs at once connects them all at once:
      // ask for a deep accept queue (the kernel caps it at net.core.somaxconn).
      this.server.listen({ path: tmp, backlog: 4096 });
      await once(this.server, 'listening');
      await chmod(tmp, mode);
      if (gid !== undefined) await chown(tmp, -1, gid);
      await link(tmp, path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST')
          throw new SocketInUseError(path, 'appeared while binding (another aproxy starting on the same path?); nothing was replaced');
        throw err;
      });
      this.socketIno = (await stat(path)).ino;
      this.bound = true;
      await unlink(tmp);
    } catch (err) {
      if (this.server.listening) this.server.close();
      throw err instanceof SocketPathError || err instanceof SocketInUseError
        ? err
        : new SocketPathError(path, `cannot listen: ${(err as Error).message}`);
    } finally {
      await unlink(tmp).catch(() => undefined);
      await rmdir(dir).catch(() => undefined);
    }
    // startupMs: time since this process started, for spotting slow starts.
    this.options.onListening?.({ path, mode: `0${mode.toString(8)}`, startupMs: Math.round(performance.now()) }, 'listening for guests');
  }

  /**
   * Gives the bound socket file new permissions (a reload changed
   * socket-mode or socket-group); a file that is no longer ours is left
   * alone. Connections already made keep working: the mode is checked at
   * connect(2) only.
   */
  async setPermissions(mode: number, gid: number | undefined): Promise<void> {
    const { path } = this.options;
    const st = await stat(path).catch(() => undefined);
    if (!this.bound || st === undefined || st.ino !== this.socketIno) return;
    try {
      if (gid !== undefined) await chown(path, -1, gid);
      await chmod(path, mode);
    } catch (err) {
      throw new SocketPathError(path, `cannot apply the new socket-mode or socket-group: ${(err as Error).message}`);
    }
  }

  protected peerOf(): GuestPeer {
    return { transport: 'unix', listener: this.name };
  }

  /** Removes the socket file, but only if it is still ours (not replaced by another proxy). */
  protected override async afterClose(): Promise<void> {
    if (!this.bound) return;
    this.bound = false;
    const st = await stat(this.options.path).catch(() => undefined);
    if (st !== undefined && st.ino === this.socketIno) await unlink(this.options.path).catch(() => undefined);
  }
}
