import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { VsockUnavailableError } from '../protocol/errors.js';
import { type GuestPeer, ServerListener } from './transport.js';
import { peerCidOf, streamHandle, vsockSupport } from './vsock-native.js';

export interface VsockListenerOptions {
  /** Port to bind on VMADDR_CID_ANY, or a listening vsock socket handed over by systemd (`ListenStream=vsock::1995`). */
  readonly address: { readonly port: number } | { readonly fd: number };
  readonly name: string;
  readonly onListening?: (fields: Record<string, unknown>, message: string) => void;
  /** Said once at start when guests could not reach this host yet (no /dev/vhost-vsock). */
  readonly onWarning?: (fields: Record<string, unknown>, message: string) => void;
}

/**
 * AF_VSOCK, where a default SVSM build attests (host CID 2, port 1995).
 * Every VM on the host can connect here, so each peer carries its CID for
 * the connection limits and the logs (the host kernel's claim, not
 * attested). SVSM's virtio-vsock does not handle half-closed connections:
 * the proxy never half-closes, and keeps a connection open after its answer
 * until the guest closes it.
 */
export class VsockListener extends ServerListener {
  readonly transport = 'vsock' as const;
  readonly name: string;
  protected readonly server = createServer({ allowHalfOpen: false, pauseOnConnect: true }, (s) => this.accept(s));

  constructor(private readonly options: VsockListenerOptions) {
    super();
    this.name = options.name;
  }

  async listen(): Promise<void> {
    const { addon } = vsockSupport();
    let fd: number;
    const address = this.options.address;
    if ('fd' in address) {
      fd = address.fd;
    } else {
      const port = address.port;
      try {
        // A host that boots many VMs at once: a full vsock accept queue answers with a reset.
        fd = addon.listen(port, 4096);
      } catch (err) {
        throw explain(err, port);
      }
    }
    // Proof that the transport works before anyone is told it listens: the
    // kernel says it is a listening vsock stream socket, and libuv takes it.
    const what = addon.describe(fd);
    if (what.family !== 'vsock' || !what.stream || !what.listening) {
      throw new VsockUnavailableError(
        `fd ${fd} is not a listening vsock stream socket (family ${String(what.family)}, listening ${what.listening})`,
      );
    }
    this.server.listen(streamHandle(fd, 'server'));
    await once(this.server, 'listening');
    if (!existsSync('/dev/vhost-vsock')) {
      this.options.onWarning?.(
        { port: what.port },
        'no /dev/vhost-vsock: VMs cannot reach this host over vsock until the vhost_vsock module is loaded',
      );
    }
    this.options.onListening?.(
      { transport: 'vsock', port: what.port, ...('fd' in address ? { fd } : {}), startupMs: Math.round(performance.now()) },
      'listening for guests',
    );
  }

  protected peerOf(socket: Socket): GuestPeer {
    const cid = peerCidOf(socket);
    return { transport: 'vsock', listener: this.name, ...(cid === undefined ? {} : { cid }) };
  }
}

function explain(err: unknown, port: number): Error {
  const code = (err as { code?: string }).code;
  if (code === 'EAFNOSUPPORT')
    return new VsockUnavailableError('this kernel has no AF_VSOCK: load the vhost_vsock module (modprobe vhost_vsock)');
  if (code === 'EADDRINUSE') return new VsockUnavailableError(`port ${port} is already bound (another aproxy?)`);
  if (code === 'ENODEV' || code === 'EADDRNOTAVAIL')
    return new VsockUnavailableError('no vsock transport: load the vhost_vsock module (modprobe vhost_vsock)');
  if (code === 'EACCES') return new VsockUnavailableError(`not allowed to bind port ${port} (ports below 1024 need CAP_NET_BIND_SERVICE)`);
  return new VsockUnavailableError((err as Error).message);
}
