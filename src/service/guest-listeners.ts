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
  const { address, name } = plan;
  if (address.fd !== undefined) {
    return inheritedSocketKind(address.fd) === 'vsock'
      ? new VsockListener({ address: { fd: address.fd }, name, onListening, onWarning })
      : new InheritedUnixListener({ fd: address.fd, name, onListening });
  }
  if (address.vsock !== undefined) return new VsockListener({ address: { port: address.vsock }, name, onListening, onWarning });
  // preflight refuses a start or reload with a named socket that was not passed.
  if (address.unix === undefined) throw new Error(`listener ${name}: systemd passed no socket named ${address.systemd}`);
  const { force, mode, gid } = address.socket;
  return new UnixListener({ path: address.unix, name, force, mode, gid, onListening });
}
