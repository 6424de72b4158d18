import { existsSync } from 'node:fs';
import type { Backend, BackendRequestEvent } from '../backends/contract.js';
import { checkSocketDirectory, socketPathState } from '../frontend/socket-path.js';
import { vsockSupport } from '../frontend/vsock-native.js';
import { describeError } from '../protocol/errors.js';
import { BackendPool } from './backend-pool.js';
import { DEFAULT_BACKEND_CALL_TIMEOUT_MS, DEFAULT_GUEST_LIMITS } from './config.js';
import { type PlannedListener, planListeners } from './listener-plan.js';
import { type Logger, redactUrl } from './log.js';
import type { ServeSettings } from './settings.js';

/** What `aproxy check` found: what would run, and each problem named. */
export interface CheckReport {
  readonly lines: string[];
  readonly problems: string[];
}

/**
 * Every check start-up makes, short of binding: listeners planned, each
 * socket's path and directory, vsock support, each backend's options (its
 * templates, its CA file) and plugin module. With `probe`, each backend
 * that can also contacts its server once. Changes nothing on the host.
 */
export async function checkConfiguration(
  settings: ServeSettings,
  o: { readonly probe: boolean; readonly log: Logger },
): Promise<CheckReport> {
  const lines: string[] = [];
  const problems: string[] = [];
  const config = { ...settings.proxy, log: o.log };
  const configured = config.unix !== undefined || config.vsock !== undefined || (config.listeners ?? []).length > 0;
  if (!configured) lines.push('listeners: none configured; the service manager must pass sockets (systemd), which are checked at start');
  let plans: PlannedListener[];
  try {
    // Without listeners of its own, the proxy serves the sockets systemd passes from fd 3 on, with the proxy-wide backend.
    plans = planListeners(configured ? config : { ...config, listenFds: [3] });
  } catch (err) {
    return { lines, problems: [describeError(err)] };
  }
  for (const plan of plans) {
    lines.push(`listener ${plan.name}: ${describeAddress(plan)} → ${describeBackend(plan)}`);
    const problem = await checkAddress(plan, lines);
    if (problem !== undefined) problems.push(`listener ${plan.name}: ${problem}`);
  }

  const pool = new BackendPool(config.backendCallTimeoutMs ?? DEFAULT_BACKEND_CALL_TIMEOUT_MS, o.log);
  try {
    const prepared = await pool.prepare(plans);
    for (const [key, p] of prepared)
      lines.push(
        `backend ${p.name} for ${plans
          .filter((l) => l.backendKey === key)
          .map((l) => l.name)
          .join(', ')}: options checked`,
      );
    if (o.probe) {
      await pool.create(prepared);
      for (const b of pool.backends) {
        const plan = plans.find((p) => p.backendKey === b.key) as PlannedListener;
        const r = await probe(b.backend.probe?.bind(b.backend), plan);
        (r.ok ? lines : problems).push(`probe ${b.name} ${describeUrl(plan)}: ${r.text}`);
      }
    }
  } catch (err) {
    problems.push(describeError(err));
  } finally {
    await pool.close();
  }

  const limits = { ...DEFAULT_GUEST_LIMITS, ...config.guestLimits };
  lines.push(
    `guests: ${limits.sessionBurst} sessions at once, then ${limits.sessionsPerMinute} a minute; vsock: ${limits.maxPerCid} connections per CID, ${limits.maxTotal} in all`,
  );
  if (config.metrics !== undefined) lines.push(`metrics: http://${config.metrics}/metrics`);
  lines.push(`logs: ${settings.process.logFormat}, level ${settings.process.logLevel}`);
  return { lines, problems };
}

/** One address, checked as binding it would, without binding. Returns the problem, or notes what it found. */
async function checkAddress(plan: PlannedListener, lines: string[]): Promise<string | undefined> {
  const c = plan.config;
  try {
    if (c.unix !== undefined) {
      const state = await socketPathState(c.unix, c.force ?? false);
      if (state === 'live')
        lines.push(`  ${c.unix} accepts connections now: fine for a reload of the proxy serving it; a new start would meet SOCKET_IN_USE`);
      else await checkSocketDirectory(c.unix);
      if (state === 'stale') lines.push(`  ${c.unix} is a stale socket: force replaces it`);
    } else if (c.vsock !== undefined) {
      vsockSupport();
      if (!existsSync('/dev/vhost-vsock'))
        lines.push('  no /dev/vhost-vsock: VMs cannot reach this host over vsock until the vhost_vsock module is loaded');
    }
    return undefined;
  } catch (err) {
    return describeError(err);
  }
}

/** One exchange with the server through the backend's own client; its result in words (reachability, TLS, status, time). */
async function probe(run: Backend['probe'], plan: PlannedListener): Promise<{ ok: boolean; text: string }> {
  if (run === undefined) return { ok: true, text: 'the backend has no probe; not contacted' };
  const seen: BackendRequestEvent[] = [];
  const ms = plan.settings.phaseTimeoutMs;
  const tls = typeof plan.backendOptions.url === 'string' && plan.backendOptions.url.startsWith('https:');
  try {
    await run({ signal: AbortSignal.timeout(ms), deadline: Date.now() + ms, observe: (e) => seen.push(e), annotate: () => undefined });
    const e = seen.at(-1);
    const exchange = e === undefined ? 'answered' : `${e.endpoint}: HTTP ${e.status ?? '-'} in ${e.durationMs.toFixed(1)} ms`;
    return { ok: true, text: `reachable; ${exchange}${tls ? '; TLS certificate verified' : ''}` };
  } catch (err) {
    const why = describeError(err);
    const e = seen.at(-1);
    const status = e?.status === undefined ? '' : `HTTP ${e.status}; `;
    if (tls && /certificate|CERT_|SSL|TLS/i.test(why)) return { ok: false, text: `TLS failed (${why})` };
    return { ok: false, text: `${status}${why}` };
  }
}

function describeAddress(plan: PlannedListener): string {
  const c = plan.config;
  if (c.unix !== undefined)
    return `unix ${c.unix} (mode ${(c.socketMode ?? 0o600).toString(8).padStart(4, '0')}${c.socketGid === undefined ? '' : `, group ${c.socketGid}`})`;
  if (c.vsock !== undefined) return `vsock port ${c.vsock}`;
  return `fd ${String(c.fd)} and on (passed by systemd)`;
}

function describeUrl(plan: PlannedListener): string {
  return typeof plan.backendOptions.url === 'string' ? redactUrl(plan.backendOptions.url) : '(no url)';
}

function describeBackend(plan: PlannedListener): string {
  const protocol = typeof plan.protocol === 'string' ? plan.protocol : plan.protocol.name;
  const resource = typeof plan.backendOptions.resource === 'string' ? ` resource ${plan.backendOptions.resource}` : '';
  return `${protocol} ${describeUrl(plan)}${resource}`;
}
