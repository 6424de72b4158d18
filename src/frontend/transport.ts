import type { Server, Socket } from 'node:net';

/** Who is at the other end of a guest stream, as far as the transport can tell (not attested). */
export interface GuestPeer {
  readonly transport: 'unix' | 'vsock';
  /** The listener's name, for logs and metrics. */
  readonly listener: string;
  /** vsock only: the peer's context id, the host kernel's claim about which VM this is. */
  readonly cid?: number;
}

export type ConnectionHandler = (stream: Socket, peer: GuestPeer) => void;

/**
 * The transport seam: something that hands over duplex byte streams from
 * guests plus a peer description. Unix sockets, inherited (socket-activated)
 * sockets and vsock are implementations; the session code knows none of them.
 */
export interface GuestListener {
  readonly name: string;
  readonly transport: GuestPeer['transport'];
  /** Binds; resolves once guests can connect. */
  listen(): Promise<void>;
  /**
   * Where accepted streams go. Streams accepted before a handler is set wait,
   * paused, with their bytes buffered: the listener can bind before the
   * session code has loaded.
   */
  onConnection(handler: ConnectionHandler): void;
  /** Stops accepting and removes what listen() created. Idempotent. */
  close(): Promise<void>;
}

/** The common part of listeners built on a `net.Server`: accept queueing and closing. */
export abstract class ServerListener implements GuestListener {
  abstract readonly name: string;
  abstract readonly transport: GuestPeer['transport'];
  protected abstract readonly server: Server;
  private handler: ConnectionHandler | undefined;
  private waiting: Array<[Socket, GuestPeer]> = [];
  private closing: Promise<void> | undefined;

  abstract listen(): Promise<void>;

  /** The peer of an accepted socket. */
  protected abstract peerOf(socket: Socket): GuestPeer;

  /** Cleanup after the server stopped accepting (e.g. remove a socket file). */
  protected async afterClose(): Promise<void> {}

  onConnection(handler: ConnectionHandler): void {
    this.handler = handler;
    const waiting = this.waiting;
    this.waiting = [];
    for (const [socket, peer] of waiting) {
      socket.off('error', ignore);
      handler(socket, peer);
    }
  }

  protected accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const peer = this.peerOf(socket);
    if (this.handler) {
      this.handler(socket, peer);
      return;
    }
    // A guest that resets while it waits must not crash the process.
    socket.on('error', ignore);
    this.waiting.push([socket, peer]);
  }

  /** Stops accepting at once; connections already handed over are the handler's to end. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.server.listening) this.server.close();
      for (const [socket] of this.waiting) socket.destroy();
      this.waiting = [];
      await this.afterClose();
    })();
    return this.closing;
  }
}

const ignore = () => undefined;
