// service/metrics.ts loads prom-client's parts from their own files: they
// must be what the package exports, so an upgrade that moves them fails here.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
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
