// service/metrics.ts loads prom-client's parts from their own files: they
// must be what the package exports, so an upgrade that moves them fails here.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';

const require = createRequire(import.meta.url);

test("the metrics' prom-client files are the package's own Registry, Counter, Gauge, Histogram and collectDefaultMetrics", () => {
  const promClient = require('prom-client') as typeof import('prom-client');
  assert.equal(require('prom-client/lib/registry.js'), promClient.Registry);
  assert.equal(require('prom-client/lib/counter.js'), promClient.Counter);
  assert.equal(require('prom-client/lib/gauge.js'), promClient.Gauge);
  assert.equal(require('prom-client/lib/histogram.js'), promClient.Histogram);
  assert.equal(require('prom-client/lib/defaultMetrics.js'), promClient.collectDefaultMetrics);
});

test('prom-client reads @opentelemetry/api only in processCpuTotal.js, for exemplars: what the bundle stubs out (scripts/bundle-stubs)', () => {
  const lib = join(dirname(require.resolve('prom-client/package.json')), 'lib');
  const readers = readdirSync(lib, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.js') && readFileSync(join(lib, f), 'utf8').includes('@opentelemetry/api'));
  assert.deepEqual(readers, [join('metrics', 'processCpuTotal.js')]);
  const source = readFileSync(join(lib, 'metrics', 'processCpuTotal.js'), 'utf8');
  const uses = [...source.matchAll(/OtelApi\.\w+/g)].map((m) => m[0]);
  assert.deepEqual([...new Set(uses)].sort(), ['OtelApi.context', 'OtelApi.trace'], 'read for the current span only');
  assert.ok(source.indexOf('if (this.enableExemplars)') < source.indexOf('OtelApi.trace'), 'and only when exemplars are on');
  const stub = require('../../../scripts/bundle-stubs/opentelemetry-api.cjs') as { trace: { getSpan(): unknown } };
  assert.throws(() => stub.trace.getSpan(), /prom-client exemplars are off/);
});
