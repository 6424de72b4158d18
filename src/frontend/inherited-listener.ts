import { once } from 'node:events';
import { readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { ConfigError } from '../protocol/errors.js';
import { type GuestPeer, ServerListener } from './transport.js';
import { describeSocket } from './vsock-native.js';

/**
 * What an inherited fd must be to be served: a listening Unix stream socket
 * (serial guests through QEMU) or a listening vsock stream socket. Anything
 * else (a TCP port from a `ListenStream=1995` slip, a datagram socket, a
 * file) would be served without the limits meant for guests, or not work:
 * it is refused at start, with what it is.
 */
export function inheritedSocketKind(fd: number): 'unix' | 'vsock' {
  let d: { family: string | number; stream: boolean; listening: boolean } | undefined;
  try {
    d = describeSocket(fd) ?? describeFromProc(fd);
  } catch {
    d = undefined; // the kernel would not describe it: not a socket (or not open)
  }
  const what =
    d === undefined
      ? 'not a socket'
      : `${d.listening ? 'a listening' : 'a non-listening'} ${familyName(d.family)} ${d.stream ? 'stream' : 'non-stream'} socket`;
  if (d?.stream && d.listening && (d.family === 'unix' || d.family === 'vsock')) return d.family;
  throw new ConfigError(
    `inherited fd ${fd} is ${what}; aproxy serves only listening Unix or vsock stream sockets (check ListenStream= in the .socket unit: a path, or vsock::1995)`,
  );
}

const FAMILY_NAMES: Readonly<Record<string, string>> = {
  inet: 'TCP/IPv4',
  inet6: 'TCP/IPv6',
  'not-unix': 'non-Unix (the vsock addon is not built to tell more)',
};

function familyName(family: string | number): string {
  return typeof family === 'number' ? `family-${family}` : (FAMILY_NAMES[family] ?? family);
}

/** Without the vsock addon: a Unix socket is found by its inode in /proc/net/unix; anything else cannot be told apart. */
function describeFromProc(fd: number): { family: string; stream: boolean; listening: boolean } | undefined {
  let target: string;
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
  const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
  if (inode === undefined) return undefined;
  // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 is __SO_ACCEPTCON, Type 0001 is SOCK_STREAM.
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[6] === inode) return { family: 'unix', stream: f[4] === '0001', listening: (parseInt(f[3] ?? '0', 16) & 0x10000) !== 0 };
  }
  return { family: 'not-unix', stream: false, listening: false };
}

export interface InheritedListenerOptions {
  /** The listening socket's file descriptor (systemd: 3). */
  readonly fd: number;
  readonly name: string;
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
    this.name = options.name;
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
