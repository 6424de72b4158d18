import { once } from 'node:events';
import { createServer } from 'node:net';
import { ServerListener, type GuestPeer } from './transport.js';

export interface InheritedListenerOptions {
  /** The listening socket's file descriptor (systemd: 3). */
  readonly fd: number;
  readonly name?: string;
  readonly onListening?: (fields: Record<string, unknown>, message: string) => void;
}

/**
 * A Unix socket that is already listening, handed over by a service manager
 * (systemd socket activation). The manager owns the socket file, so close()
 * leaves it in place.
 */
export class InheritedUnixListener extends ServerListener {
  readonly transport = 'unix' as const;
  readonly name: string;
  protected readonly server = createServer({ allowHalfOpen: false, pauseOnConnect: true }, (s) => this.accept(s));

  constructor(private readonly options: InheritedListenerOptions) {
    super();
    this.name = options.name ?? `fd${options.fd}`;
  }

  async listen(): Promise<void> {
    this.server.listen({ fd: this.options.fd });
    await once(this.server, 'listening');
    this.options.onListening?.({ fd: this.options.fd }, 'listening for guests on an inherited socket');
  }

  protected peerOf(): GuestPeer {
    return { transport: 'unix', listener: this.name };
  }
}
