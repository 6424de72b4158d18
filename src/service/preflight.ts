import { existsSync } from 'node:fs';
import type { ListenerFacts } from '../backends/contract.js';
import { type PreparedBackend, prepareBackend } from '../backends/registry.js';
import { inheritedSocketKind } from '../frontend/inherited-listener.js';
import { checkSocketDirectory, LIVE_SOCKET, socketPathState } from '../frontend/socket-path.js';
import { vsockSupport } from '../frontend/vsock-native.js';
import {
  type AproxyErrorCode,
  ConfigError,
  codeOf,
  describeError,
  SetupRefusedError,
  SocketInUseError,
  SocketPathError,
} from '../protocol/errors.js';
import type { BackendPool } from './backend-pool.js';
import type { NormalizedConfig } from './config/normalize.js';
import { type PlannedListener, planListeners } from './listener-plan.js';

/**
 * Why a preflight runs: `start` (nothing is bound yet), `reload` (the
 * listeners in `bound` are ours already), `check` (`aproxy check`: a live
 * socket may be the running proxy's, and sockets systemd would pass are not
 * there to look at).
 */
export type PreflightPurpose =
  | { readonly kind: 'start' }
  | { readonly kind: 'reload'; readonly bound: ReadonlySet<string> }
  | { readonly kind: 'check' };

export interface Problem {
  readonly code: AproxyErrorCode;
  readonly text: string;
}

export interface PreflightResult {
  readonly plans: PlannedListener[];
  /** Backends the pool lacks, checked and ready to create. */
  readonly prepared: Map<string, PreparedBackend>;
  /** What each listener's check found that is worth saying but no problem, by listener key. */
  readonly notes: ReadonlyMap<string, readonly string[]>;
  /** Every problem, each naming what it is about. */
  readonly problems: readonly Problem[];
}

/**
 * Whether a configuration can start: the one decision that start-up,
 * reload and `aproxy check` share. Every check short of binding, all of
 * them, every problem collected: each listener's address (socket path and
 * directory, vsock support, an inherited socket's kind), each backend's
 * options (templates, CA file) and plugin module, and each backend's
 * options against each listener it serves (a template field the
 * listener's guests cannot fill). Binds and writes nothing; a plugin
 * module is loaded (its top-level code runs) to check its options.
 */
export async function preflight(config: NormalizedConfig, pool: BackendPool, purpose: PreflightPurpose): Promise<PreflightResult> {
  const plans = planListeners(config);
  const problems: Problem[] = [];
  const notes = new Map<string, string[]>();
  const transports = new Map<string, ListenerFacts['transport'] | undefined>();
  for (const plan of plans) {
    const found: string[] = [];
    notes.set(plan.key, found);
    try {
      transports.set(plan.key, transportOf(plan, purpose));
      await checkAddress(plan, purpose, found);
    } catch (err) {
      problems.push(problem(plan.name, err));
    }
  }

  const prepared = new Map<string, PreparedBackend>();
  for (const plan of plans) {
    if (pool.has(plan.backendKey) || prepared.has(plan.backendKey)) continue;
    const users = plans.filter((p) => p.backendKey === plan.backendKey);
    try {
      prepared.set(plan.backendKey, await prepareBackend(plan.protocol, plan.backendOptions, process.cwd(), config.backendCallTimeoutMs));
    } catch (err) {
      problems.push(problem(plans.length > 1 ? users.map((p) => p.name).join(', ') : undefined, err));
    }
  }
  for (const plan of plans) {
    const transport = transports.get(plan.key);
    const backend = prepared.get(plan.backendKey);
    if (transport === undefined || backend === undefined) continue;
    try {
      backend.checkListener({ name: plan.name, transport });
    } catch (err) {
      problems.push(problem(undefined, err));
    }
  }
  return { plans, prepared, notes, problems };
}

/** Start-up and reload: refuse a configuration with problems, all of them named. */
export function refuseProblems(result: PreflightResult): void {
  if (result.problems.length > 0) throw new SetupRefusedError(result.problems);
}

/** The guests a listener takes: by its address, or for a socket systemd passed, by asking the kernel (only the running process has it). */
function transportOf(plan: PlannedListener, purpose: PreflightPurpose): ListenerFacts['transport'] | undefined {
  const a = plan.address;
  if (a.unix !== undefined) return 'unix';
  if (a.vsock !== undefined) return 'vsock';
  return purpose.kind === 'check' || a.fd === undefined ? undefined : inheritedSocketKind(a.fd);
}

/** One listener's address, checked as binding it would, without binding. */
async function checkAddress(plan: PlannedListener, purpose: PreflightPurpose, notes: string[]): Promise<void> {
  const a = plan.address;
  if (purpose.kind === 'reload' && purpose.bound.has(plan.key)) return;
  if (a.unix !== undefined) {
    const state = await socketPathState(a.unix, a.socket.force);
    if (state === 'live') {
      if (purpose.kind !== 'check') throw new SocketInUseError(a.unix, LIVE_SOCKET);
      notes.push(`${a.unix} accepts connections now: fine for a reload of the proxy serving it; a new start would meet SOCKET_IN_USE`);
    } else {
      await checkSocketDirectory(a.unix);
    }
    checkSocketGroup(a.unix, a.socket.gid);
    if (state === 'stale') notes.push(`${a.unix} is a stale socket: force replaces it`);
  } else if (a.systemd !== undefined && a.fd === undefined) {
    const unit = `a .socket unit with FileDescriptorName=${a.systemd} and Service=aproxy.service passes it`;
    if (purpose.kind !== 'check') throw new ConfigError(`systemd passed no socket named ${a.systemd}; ${unit}`);
    notes.push(`adopted when systemd starts the service: ${unit}`);
  } else if (a.vsock !== undefined) {
    vsockSupport();
    if (!existsSync('/dev/vhost-vsock'))
      notes.push('no /dev/vhost-vsock: VMs cannot reach this host over vsock until the vhost_vsock module is loaded');
  }
}

/** Giving the socket file to a group takes root (CAP_CHOWN) or membership of that group, as chown(2) does. */
function checkSocketGroup(path: string, gid: number | undefined): void {
  if (gid === undefined || process.getuid?.() === 0 || process.getgid?.() === gid || process.getgroups?.().includes(gid)) return;
  throw new SocketPathError(
    path,
    `cannot give the socket to group ${gid} (option socket-group): this user (uid ${process.getuid?.()}) is not in it; add the user to the group, or run as a user that is`,
  );
}

/** A problem's line, naming the listeners it is about unless the message starts with the name (a socket path). */
function problem(listeners: string | undefined, err: unknown): Problem {
  const text = describeError(err);
  return { code: codeOf(err), text: listeners === undefined || text.startsWith(listeners) ? text : `listener ${listeners}: ${text}` };
}
