import { EventEmitter, once } from 'node:events';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Counter, Gauge, Histogram } from 'prom-client';
// prom-client's parts, each from its own file: its index also loads the
// Pushgateway (http, https, zlib, tls), the cluster aggregator and Summary,
// ~20 ms of CPU before the first guest (docs/performance.md). The package
// has no "exports" map; test/service/metrics-parts.test.ts checks these are
// what it exports.
import CounterMetric from 'prom-client/lib/counter.js';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js';
import GaugeMetric from 'prom-client/lib/gauge.js';
import HistogramMetric from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';
import type { BackendRequestEvent } from '../backends/contract.js';
import { LogBursts } from '../frontend/log-bursts.js';
import type { PacedEvent, ProxyServer, RefusalEvent } from '../frontend/server.js';
import type { SessionOutcome } from '../frontend/session.js';
import { packageVersion } from '../package-root.js';
import { parseListenAddress } from './config/values.js';
import { droppedLogLines, type Logger } from './log.js';

// Required, not imported: on Node 22 and later an ES import of node:http
// evaluates each of its exports, which loads Node's own fetch (~35 ms of CPU
// before the first guest is served, measured in docs/performance.md).
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

/**
 * Distinct endpoint labels kept. Labels come from the configuration (the
 * resource template, not the path resolved per guest), so a proxy has a
 * handful; this is the guard against a backend that names endpoints after
 * guest data: past it, new names are counted as `other`.
 */
const MAX_ENDPOINT_LABELS = 64;

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Prometheus metrics for one proxy, every name prefixed `aproxy_`. */
export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly sessions: Counter<'outcome' | 'reason' | 'transport' | 'listener'>;
  private readonly refusals: Counter<'transport' | 'listener' | 'reason'>;
  private readonly reloads: Counter<'result'>;
  private readonly phase: Histogram<'phase'>;
  private readonly backendRequest: Histogram<'endpoint' | 'status'>;
  private readonly backendErrors: Counter<'kind'>;
  private readonly connections: Gauge<'transport' | 'listener'>;
  private readonly paced: Counter<'transport' | 'listener'>;
  private readonly endpoints = new Set<string>();

  constructor(server: ProxyServer, log?: object) {
    collectDefaultMetrics({ register: this.registry, prefix: 'aproxy_' });
    const registers = [this.registry];
    // Which build answers, for dashboards and alerts across an upgrade (the build_info convention).
    new GaugeMetric({
      name: 'aproxy_build_info',
      help: 'Always 1; its labels say which aproxy (version) runs on which Node (node)',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: packageVersion(), node: process.version }, 1);
    this.sessions = new CounterMetric({
      name: 'aproxy_sessions_total',
      help: 'Guest attestation sessions by outcome (success, failure, aborted), reason code, transport (unix, vsock) and listener',
      labelNames: ['outcome', 'reason', 'transport', 'listener'],
      registers,
    });
    this.refusals = new CounterMetric({
      name: 'aproxy_guest_refusals_total',
      help: 'vsock connections turned away by the limits, by reason (per_cid, total)',
      labelNames: ['transport', 'listener', 'reason'],
      registers,
    });
    this.paced = new CounterMetric({
      name: 'aproxy_guest_sessions_paced_total',
      help: 'Sessions that waited because their guest was over its session budget (its link unread meanwhile)',
      labelNames: ['transport', 'listener'],
      registers,
    });
    const waiting: Gauge<'transport' | 'listener' | 'reason'> = new GaugeMetric({
      name: 'aproxy_guest_links_waiting',
      help: 'Guest links not being read now, by reason: answer_untaken (the guest does not read), session_budget (paced), backend_busy (an abandoned exchange finishing)',
      labelNames: ['transport', 'listener', 'reason'],
      registers,
      collect: () => {
        waiting.reset();
        for (const c of server.waitingCounts()) waiting.set({ transport: c.transport, listener: c.listener, reason: c.reason }, c.count);
      },
    });
    const dropped: Counter = new CounterMetric({
      name: 'aproxy_log_lines_dropped_total',
      help: 'Log lines dropped because stdout did not keep up and the log buffer (log-buffer-bytes) was full',
      registers,
      collect: () => {
        if (log === undefined) return;
        dropped.reset();
        dropped.inc(droppedLogLines(log));
      },
    });
    this.reloads = new CounterMetric({
      name: 'aproxy_config_reloads_total',
      help: 'Configuration reloads (SIGHUP) by result: applied, or refused (the running configuration stayed)',
      labelNames: ['result'],
      registers,
    });
    this.phase = new HistogramMetric({
      name: 'aproxy_phase_duration_seconds',
      help: 'Duration of the negotiation and attestation phases as the guest sees them',
      labelNames: ['phase'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.backendRequest = new HistogramMetric({
      name: 'aproxy_backend_request_duration_seconds',
      help: 'Duration of each exchange with the attestation server, by endpoint and status',
      labelNames: ['endpoint', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.backendErrors = new CounterMetric({
      name: 'aproxy_backend_errors_total',
      help: 'Exchanges with the attestation server that produced no usable answer, by kind',
      labelNames: ['kind'],
      registers,
    });
    this.connections = new GaugeMetric({
      name: 'aproxy_guest_connections',
      help: 'Guest connections open now, by transport (unix: QEMU serial links; vsock) and listener',
      labelNames: ['transport', 'listener'],
      registers,
      collect: () => {
        // Only configured listeners: a removed one disappears from the series.
        this.connections.reset();
        for (const c of server.connectionCounts()) this.connections.set({ transport: c.transport, listener: c.listener }, c.count);
      },
    });
    server.on('refusal', (r: RefusalEvent) => this.refusals.inc({ transport: r.transport, listener: r.listener, reason: r.reason }));
    server.on('paced', (p: PacedEvent) => this.paced.inc({ transport: p.transport, listener: p.listener }));
    server.on('session', (o: SessionOutcome) => this.onSession(o));
    server.on('backend-request', (e: BackendRequestEvent) => this.onBackendRequest(e));
  }

  private onSession(o: SessionOutcome): void {
    this.sessions.inc({ outcome: o.outcome, reason: o.reason ?? 'none', transport: o.transport, listener: o.listener });
    if (o.negotiateMs !== undefined) this.phase.observe({ phase: 'negotiate' }, o.negotiateMs / 1000);
    if (o.attestMs !== undefined) this.phase.observe({ phase: 'attest' }, o.attestMs / 1000);
  }

  private onBackendRequest(e: BackendRequestEvent): void {
    let endpoint = e.endpoint.slice(0, 120);
    if (!this.endpoints.has(endpoint)) {
      if (this.endpoints.size >= MAX_ENDPOINT_LABELS) endpoint = 'other';
      else this.endpoints.add(endpoint);
    }
    this.backendRequest.observe({ endpoint, status: String(e.status ?? e.error ?? 'none') }, e.durationMs / 1000);
    if (e.error !== undefined) this.backendErrors.inc({ kind: e.error });
    else if (e.status !== undefined && e.status >= 500) this.backendErrors.inc({ kind: 'BACKEND_HTTP' }); // what the backend raises for it
  }

  /** Counts one configuration reload. */
  reloaded(result: 'applied' | 'refused'): void {
    this.reloads.inc({ result });
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

/** One metric as a proxy registers it. */
export interface MetricDefinition {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly labels: readonly string[];
}

/** Every metric a proxy registers (its own, then prom-client's process metrics), for docs/metrics.md and for checking contrib/ against. */
export async function metricCatalogue(): Promise<MetricDefinition[]> {
  // A server that never has guests: only the registrations matter here.
  const inert = Object.assign(new EventEmitter(), { connectionCounts: () => [], waitingCounts: () => [] }) as unknown as ProxyServer;
  const registry = new ProxyMetrics(inert).registry;
  const labels = new Map(
    (registry.getMetricsAsArray() as unknown as Array<{ name: string; labelNames?: readonly string[] }>).map((m) => [
      m.name,
      m.labelNames ?? [],
    ]),
  );
  const all = (await registry.getMetricsAsJSON()) as unknown as Array<{ name: string; type: string; help: string }>;
  return all.map((m) => ({ name: m.name, type: m.type, help: m.help, labels: labels.get(m.name) ?? [] }));
}

/**
 * The metrics endpoint's bounds. A scraper needs one connection, every 15 s
 * or so; anyone who can reach the port could otherwise hold connections
 * until the process runs out of file descriptors, and every guest with it.
 */
export const METRICS_LIMITS = {
  /** Connections at once; more are closed on accept (Node's maxConnections). */
  maxConnections: 16,
  /** A request's headers must arrive within this. */
  headersTimeoutMs: 5_000,
  /** A whole request must arrive within this. */
  requestTimeoutMs: 10_000,
  /** A kept-alive connection idle this long is closed (a scrape interval is longer: the scraper reconnects). */
  keepAliveTimeoutMs: 5_000,
} as const;

/** Serves GET /metrics (text exposition format) and nothing else, within METRICS_LIMITS; a connection over the cap is logged once per burst. */
export async function serveMetrics(metrics: ProxyMetrics, address: string, log: Logger): Promise<{ server: Server; url: string }> {
  const { host, port } = parseListenAddress(address);
  const server = createServer(
    { headersTimeout: METRICS_LIMITS.headersTimeoutMs, requestTimeout: METRICS_LIMITS.requestTimeoutMs },
    (req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
        return;
      }
      metrics.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
      );
    },
  );
  server.maxConnections = METRICS_LIMITS.maxConnections;
  server.keepAliveTimeout = METRICS_LIMITS.keepAliveTimeoutMs;
  // Idle sockets (nothing sent, or half a request) close with the request deadline.
  server.on('connection', (socket) => socket.setTimeout(METRICS_LIMITS.requestTimeoutMs, () => socket.destroy()));
  // The first refusal of a burst is logged, the rest counted into its summary line.
  const bursts = new LogBursts(log);
  server.on('drop', () =>
    bursts.warn(
      'metrics_cap',
      { maxConnections: METRICS_LIMITS.maxConnections },
      'metrics endpoint at its connection cap: connections over it are closed',
    ),
  );
  server.listen(port, host);
  await once(server, 'listening');
  const a = server.address() as AddressInfo;
  return { server, url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics` };
}
