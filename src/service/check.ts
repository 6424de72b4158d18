import type { Backend, BackendRequestEvent } from '../backends/contract.js';
import { describeError } from '../protocol/errors.js';
import { BackendPool } from './backend-pool.js';
import { normalizeConfig } from './config/normalize.js';
import type { Settings } from './config/types.js';
import { formatMode } from './config/values.js';
import type { PlannedListener } from './listener-plan.js';
import { type Logger, redactUrl } from './log.js';
import { preflight } from './preflight.js';

/** What `aproxy check` found: what would run, and each problem named. */
export interface CheckReport {
  readonly lines: string[];
  readonly problems: string[];
}

/**
 * `aproxy check`: the checks start-up makes (preflight.ts, the same
 * function), reported line by line instead of refused at the first. With
 * `probe`, each backend that can also contacts its server once. Changes
 * nothing on the host.
 */
export async function checkConfiguration(settings: Settings, o: { readonly probe: boolean; readonly log: Logger }): Promise<CheckReport> {
  const lines: string[] = [];
  const input = { ...settings.config, log: o.log };
  const own = input.unix !== undefined || input.vsock !== undefined || (input.listeners ?? []).length > 0;
  if (!own) lines.push('listeners: none configured; the service manager must pass sockets (systemd), which are checked at start');
  // Without listeners of its own, the proxy serves the sockets systemd passes from fd 3 on, with the proxy-wide backend.
  const config = normalizeConfig(own ? input : { ...input, listenFds: [{ fd: 3 }] });
  const pool = new BackendPool(config.backendCallTimeoutMs, o.log);
  try {
    const checked = await preflight(config, pool, { kind: 'check' });
    const problems = checked.problems.map((p) => p.text);
    for (const plan of checked.plans) {
      lines.push(`listener ${plan.name}: ${describeAddress(plan)} → ${describeBackend(plan)}`);
      for (const note of checked.notes.get(plan.key) ?? []) lines.push(`  ${note}`);
    }
    for (const [key, p] of checked.prepared) {
      const users = checked.plans.filter((l) => l.backendKey === key).map((l) => l.name);
      lines.push(`backend ${p.name} for ${users.join(', ')}: options checked`);
    }
    if (o.probe && problems.length === 0) {
      await pool.create(checked.prepared);
      for (const b of pool.backends) {
        const plan = checked.plans.find((p) => p.backendKey === b.key) as PlannedListener;
        const r = await probe(b.backend.probe?.bind(b.backend), plan);
        (r.ok ? lines : problems).push(`probe ${b.name} ${describeUrl(plan)}: ${r.text}`);
      }
    }
    const limits = config.guestLimits;
    lines.push(
      `guests: ${limits.sessionBurst} sessions at once, then ${limits.sessionsPerMinute} a minute; vsock: ${limits.maxPerCid} connections per CID, ${limits.maxTotal} in all`,
    );
    if (config.metrics !== undefined) lines.push(`metrics: http://${config.metrics}/metrics`);
    lines.push(`logs: ${settings.process.logFormat}, level ${settings.process.logLevel}`);
    return { lines, problems };
  } finally {
    await pool.close();
  }
}

/** One exchange with the server through the backend's own client; its result in words (reachability, TLS, status, time). */
async function probe(run: Backend['probe'], plan: PlannedListener): Promise<{ ok: boolean; text: string }> {
  if (run === undefined) return { ok: true, text: 'the backend has no probe; not contacted' };
  const seen: BackendRequestEvent[] = [];
  const ms = plan.phaseTimeoutMs;
  const tls = typeof plan.backendOptions.url === 'string' && plan.backendOptions.url.startsWith('https:');
  const signal = AbortSignal.timeout(ms);
  // The deadline holds whether or not the backend heeds the signal.
  const late = new Promise<never>((_, reject) =>
    signal.addEventListener('abort', () => reject(new Error(`no answer within ${ms} ms (phase-timeout-ms)`)), { once: true }),
  );
  try {
    await Promise.race([run({ signal, deadline: Date.now() + ms, observe: (e) => seen.push(e), annotate: () => undefined }), late]);
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
  const a = plan.address;
  if (a.unix !== undefined) {
    return `unix ${a.unix} (mode ${formatMode(a.socket.mode)}${a.socket.gid === undefined ? '' : `, group ${a.socket.gid}`})`;
  }
  if (a.vsock !== undefined) return `vsock port ${a.vsock}`;
  if (a.systemd !== undefined) return `the socket systemd passes as ${a.systemd} (FileDescriptorName=${a.systemd})`;
  // check is never passed sockets: without listeners of its own it stands for those systemd would pass.
  return `fd ${a.fd} and on (passed by systemd)`;
}

function describeUrl(plan: PlannedListener): string {
  return typeof plan.backendOptions.url === 'string' ? redactUrl(plan.backendOptions.url) : '(no url)';
}

function describeBackend(plan: PlannedListener): string {
  const protocol = typeof plan.protocol === 'string' ? plan.protocol : plan.protocol.name;
  const resource = typeof plan.backendOptions.resource === 'string' ? ` resource ${plan.backendOptions.resource}` : '';
  return `${protocol} ${describeUrl(plan)}${resource}`;
}
