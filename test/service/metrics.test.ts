import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import type { ProxyServer } from '../../src/frontend/server.js';
import { ProxyMetrics } from '../../src/service/metrics.js';

/** The events and counts ProxyMetrics reads, without guests. */
function quietServer(): ProxyServer {
  return Object.assign(new EventEmitter(), { connectionCounts: () => [], waitingCounts: () => [] }) as unknown as ProxyServer;
}

describe('metrics', () => {
  test('a backend that names endpoints after guest data cannot grow the series past a fixed number', async () => {
    const server = quietServer();
    const metrics = new ProxyMetrics(server);
    for (let i = 0; i < 500; i++) server.emit('backend-request', { endpoint: `GET /resource/guest-${i}`, status: 200, durationMs: 1 });
    const scrape = await metrics.metrics();
    const endpoints = new Set([...scrape.matchAll(/aproxy_backend_request_duration_seconds_count\{endpoint="([^"]*)"/g)].map((m) => m[1]));
    assert.equal(endpoints.size, 65, 'the first 64 names, then everything else as one');
    assert.ok(endpoints.has('other'));
  });
});
