import { InheritedUnixListener, inheritedSocketKind } from '../frontend/inherited-listener.js';
import type { GuestListener } from '../frontend/transport.js';
import { UnixListener } from '../frontend/unix-listener.js';
import { VsockListener } from '../frontend/vsock-listener.js';
import type { PlannedListener } from './listener-plan.js';
import type { Logger } from './log.js';

/** The transport listener for a planned one, not yet bound: the only place a transport is chosen. */
export function listenerFor(plan: PlannedListener, log: Logger): GuestListener {
  const onListening = (fields: Record<string, unknown>, message: string) => log.info({ listener: plan.name, ...fields }, message);
  const onWarning = (fields: Record<string, unknown>, message: string) => log.warn({ listener: plan.name, ...fields }, message);
  const c = plan.config;
  if (c.fd !== undefined) {
    return inheritedSocketKind(c.fd) === 'vsock'
      ? new VsockListener({ fd: c.fd, name: plan.name, onListening, onWarning })
      : new InheritedUnixListener({ fd: c.fd, name: plan.name, onListening });
  }
  if (c.vsock !== undefined) return new VsockListener({ port: c.vsock, name: plan.name, onListening, onWarning });
  return new UnixListener({ path: c.unix as string, name: plan.name, force: c.force, mode: c.socketMode, gid: c.socketGid, onListening });
}
